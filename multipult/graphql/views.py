"""The /graphql endpoint: authentication, depth limit, per-request DataLoaders, deferred execution."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import JsonResponse
from graphene_django.views import GraphQLView as BaseGraphQLView

from dbops.instrumentation.profiling import current_profile
from multipult.graphql.dataloaders import get_dataloaders
from multipult.graphql.execution import DeferredExecutionContext, validation_rules


class GraphQLView(BaseGraphQLView):
    execution_context_class = DeferredExecutionContext

    @property
    def validation_rules(self):
        return validation_rules()  # read per request, so the depth setting can change in tests

    @validation_rules.setter
    def validation_rules(self, value) -> None:  # the base __init__ assigns it; the property wins
        pass

    def dispatch(self, request, *args, **kwargs):
        if not settings.GRAPHQL_ALLOW_ANONYMOUS and not request.user.is_authenticated:
            return JsonResponse({"errors": [{"message": "Authentication required."}]}, status=401)
        return super().dispatch(request, *args, **kwargs)

    def get_context(self, request):
        request.dataloaders = get_dataloaders()  # fresh per request: nothing cached across requests
        return request

    def execute_graphql_request(self, request, data, query, variables, operation_name, show_graphiql=False):
        profile = current_profile()
        if profile is not None:
            profile.tag(graphql_operation=operation_name or "anonymous")
        return super().execute_graphql_request(request, data, query, variables, operation_name, show_graphiql)

    def get_response(self, request, data, show_graphiql=False):
        result, status_code = super().get_response(request, data, show_graphiql)
        profile = current_profile()
        dataloaders = getattr(request, "dataloaders", None)
        if result is None or profile is None or dataloaders is None:
            return result, status_code
        # Profiling on: loader statistics and the SQL so far in the response's extensions.
        response = json.loads(result)
        response["extensions"] = {
            "dataloaders": dataloaders.stats(),
            "sql": {"queries": len(profile.records), "totalMs": round(profile.total_ms, 3)},
        }
        return self.json_encode(request, response, pretty=show_graphiql), status_code
