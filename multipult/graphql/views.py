"""The /graphql endpoint: authentication (session or bearer token), GraphiQL for staff, the response limit.

A request with `Authorization: Bearer <token>` is authenticated by that token alone (a wrong or revoked
token is refused, never passed on to the session); it carries no cookie, so it needs no CSRF token.
A session request is CSRF-checked as Django's middleware would. Queries run through `query_run`
(multipult/graphql/schema.py): the same validation, introspection rule and cost limits as everywhere.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpResponseBadRequest, HttpResponseNotAllowed, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphene_django.views import GraphQLView as BaseGraphQLView
from graphene_django.views import HttpError
from graphql import ExecutionResult, OperationType, parse
from graphql.utilities import get_operation_ast

from dbops.instrumentation.profiling import current_profile
from multipult.core.services.tokens import api_token_authenticate
from multipult.graphql.access import viewer_of
from multipult.graphql.dataloaders import get_dataloaders
from multipult.graphql.execution import DeferredExecutionContext
from multipult.graphql.schema import query_run

BEARER = "Bearer "


def _refusal(message: str, status: int) -> JsonResponse:
    return JsonResponse({"errors": [{"message": message}]}, status=status)


def _csrf_refusal(request):
    return CsrfViewMiddleware(lambda _request: None).process_view(request, None, (), {})


@method_decorator(csrf_exempt, name="dispatch")  # checked below for session requests; tokens need none
class GraphQLView(BaseGraphQLView):
    execution_context_class = DeferredExecutionContext
    graphiql_template = "graphql/graphiql.html"  # its scripts and styles are static files: works offline

    def dispatch(self, request, *args, **kwargs):
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        if authorization.startswith(BEARER):
            user = api_token_authenticate(secret=authorization[len(BEARER) :].strip())
            if user is None:
                return _refusal("Invalid or revoked API token.", 401)
            request.user = user
        else:
            refused = _csrf_refusal(request)
            if refused is not None:
                return refused
        if not settings.GRAPHQL_ALLOW_ANONYMOUS and not request.user.is_authenticated:
            return _refusal("Authentication required.", 401)
        if self.graphiql and self.can_display_graphiql(request, {}) and not self._introspection_allowed(request):
            return _refusal("GraphiQL is only for staff users (or with DEBUG on); send queries as JSON.", 403)
        return super().dispatch(request, *args, **kwargs)

    @staticmethod
    def _introspection_allowed(request) -> bool:
        return settings.DEBUG or viewer_of(request).is_staff

    def get_context(self, request):
        request.dataloaders = get_dataloaders()  # fresh per request: nothing cached across requests
        return request

    def execute_graphql_request(self, request, data, query, variables, operation_name, show_graphiql=False):
        if not query:
            if show_graphiql:
                return None
            raise HttpError(HttpResponseBadRequest("Must provide query string."))
        if request.method.lower() == "get" and not self._is_query(query, operation_name):
            raise HttpError(HttpResponseNotAllowed(["POST"], "Only queries may be sent with GET."))
        profile = current_profile()
        if profile is not None:
            profile.tag(graphql_operation=operation_name or "anonymous")
        try:
            return query_run(
                query, context=self.get_context(request), variables=variables, operation_name=operation_name
            )
        except Exception as error:  # as graphene-django: an unexpected failure is the response's error
            return ExecutionResult(data=None, errors=[error])

    @staticmethod
    def _is_query(query: str, operation_name: str | None) -> bool:
        try:
            operation = get_operation_ast(parse(query), operation_name)
        except Exception:
            return True  # query_run reports the syntax error
        return operation is None or operation.operation == OperationType.QUERY

    def json_encode(self, request, d, pretty=False):
        dataloaders = getattr(request, "dataloaders", None)
        profile = current_profile()
        if profile is not None and dataloaders is not None and isinstance(d, dict):
            # Profiling on: loader statistics and the SQL so far, added before the one encoding.
            d["extensions"] = {
                "dataloaders": dataloaders.stats(),
                "sql": {"queries": len(profile.records), "totalMs": round(profile.total_ms, 3)},
            }
        return super().json_encode(request, d, pretty)

    def get_response(self, request, data, show_graphiql=False):
        result, status_code = super().get_response(request, data, show_graphiql)
        limit = settings.GRAPHQL_MAX_RESPONSE_BYTES
        if result is not None and len(result) > limit:  # ASCII JSON: characters are bytes
            message = (
                f"The response would be {len(result):,} bytes, more than {limit:,} (GRAPHQL_MAX_RESPONSE_BYTES): "
                "ask for fewer objects or fields."
            )
            return json.dumps({"errors": [{"message": message}]}), 400
        return result, status_code
