"""The /graphql schema: read queries over the domain, limit/offset lists and a Relay users connection.

Root lists filter on the indexed fields only, so every root query is an index scan, and read only the
columns the query selects. `query_run` is the one way a query runs (the view and `execute_query`):
parse, validate (introspection only for staff or DEBUG), check the cost limits, then execute.
"""

from __future__ import annotations

from types import SimpleNamespace

import graphene
from django.conf import settings
from graphql import DocumentNode, ExecutionResult, GraphQLError, execute, parse, validate

from multipult.core.models import AuditLog, Concept, Dictionary, Role, StoredFile, User
from multipult.graphql.access import access_apply, viewer_of
from multipult.graphql.dataloaders import get_dataloaders
from multipult.graphql.execution import DeferredExecutionContext, validation_stages
from multipult.graphql.limits import query_limits_check
from multipult.graphql.selection import selected_columns
from multipult.graphql.types import (
    AuditLogType,
    ConceptType,
    DictionaryType,
    QuerySetConnectionField,
    RoleType,
    StoredFileType,
    UserConnection,
    UserType,
    limited_list,
)

MAX_QUERY_TOKENS = 5000  # a query document longer than this is refused before it is parsed whole


def _page(queryset, info, type_name: str, limit: int, offset: int, *, through: tuple = ()):
    # limit was checked against LIST_LIMITS before execution (multipult/graphql/limits.py)
    if offset < 0:
        raise GraphQLError("offset must not be negative.")
    return queryset.only(*selected_columns(info, queryset.model, type_name, through=through))[offset : offset + limit]


def _paged_list(of_type, field: str, **filters):
    return limited_list(of_type, field, offset=graphene.Int(default_value=0), **filters)


def _users(is_active=None, username=None):
    users = User.objects.order_by("-date_joined", "-id")  # user_active_joined_idx
    if is_active is not None:
        users = users.filter(is_active=is_active)
    if username is not None:
        users = users.filter(username=username)
    return users


class Query(graphene.ObjectType):
    users = _paged_list(UserType, "Query.users", is_active=graphene.Boolean(), username=graphene.String())
    users_connection = QuerySetConnectionField(UserConnection, is_active=graphene.Boolean(), username=graphene.String())
    user = graphene.Field(UserType, id=graphene.ID(required=True))
    roles = _paged_list(RoleType, "Query.roles", name=graphene.String())
    concepts = _paged_list(ConceptType, "Query.concepts", code=graphene.String(), created_by_id=graphene.ID())
    dictionaries = _paged_list(DictionaryType, "Query.dictionaries", name=graphene.String())
    files = _paged_list(StoredFileType, "Query.files", entity_type=graphene.String(), entity_id=graphene.ID())
    audit_logs = _paged_list(
        AuditLogType, "Query.auditLogs", actor_id=graphene.ID(), entity_type=graphene.String(), entity_id=graphene.ID()
    )

    @staticmethod
    def resolve_users(root, info, limit, offset, is_active=None, username=None):
        return _page(_users(is_active, username), info, "User", limit, offset)

    @staticmethod
    def resolve_users_connection(root, info, is_active=None, username=None, **connection_args):
        return _users(is_active, username).only(*selected_columns(info, User, "User", through=("edges", "node")))

    @staticmethod
    def resolve_user(root, info, id):
        return User.objects.only(*selected_columns(info, User, "User")).filter(pk=id).first()

    @staticmethod
    def resolve_roles(root, info, limit, offset, name=None):
        roles = Role.objects.order_by("name")
        if name is not None:
            roles = roles.filter(name=name)
        return _page(roles, info, "Role", limit, offset)

    @staticmethod
    def resolve_concepts(root, info, limit, offset, code=None, created_by_id=None):
        concepts = Concept.objects.order_by("code")
        if code is not None:
            concepts = concepts.filter(code=code)
        if created_by_id is not None:
            concepts = concepts.filter(created_by_id=created_by_id).order_by("-created_at", "-id")
        return _page(concepts, info, "Concept", limit, offset)

    @staticmethod
    def resolve_dictionaries(root, info, limit, offset, name=None):
        dictionaries = Dictionary.objects.order_by("name")
        if name is not None:
            dictionaries = dictionaries.filter(name=name)
        return _page(dictionaries, info, "Dictionary", limit, offset)

    @staticmethod
    def resolve_files(root, info, limit, offset, entity_type=None, entity_id=None):
        files = StoredFile.objects.order_by("-created_at", "-id")
        if entity_type is not None:
            files = files.filter(entity_type=entity_type)
        if entity_id is not None:
            files = files.filter(entity_id=entity_id)
        return _page(files, info, "StoredFile", limit, offset)

    @staticmethod
    def resolve_audit_logs(root, info, limit, offset, actor_id=None, entity_type=None, entity_id=None):
        logs = AuditLog.objects.order_by("-timestamp", "-id")
        if actor_id is not None:
            logs = logs.filter(actor_id=actor_id)
        if entity_type is not None:
            logs = logs.filter(entity_type=entity_type)
        if entity_id is not None:
            logs = logs.filter(entity_id=entity_id)
        return _page(logs, info, "AuditLog", limit, offset)


schema = graphene.Schema(query=Query)
access_apply(schema.graphql_schema)


def query_run(
    query: str, *, context, variables: dict | None = None, operation_name: str | None = None
) -> ExecutionResult:
    """Parses, validates, checks the cost limits and executes one query; a refusal is an ExecutionResult
    without data whose errors name the rule or limit. `context` has `.user` and `.dataloaders`."""
    try:
        document: DocumentNode = parse(query, max_tokens=MAX_QUERY_TOKENS)
    except GraphQLError as error:
        return ExecutionResult(data=None, errors=[error])
    viewer = viewer_of(context)
    for rules in validation_stages(introspection=settings.DEBUG or viewer.is_staff):
        errors = validate(schema.graphql_schema, document, rules)
        if errors:
            return ExecutionResult(data=None, errors=errors)
    errors = query_limits_check(schema.graphql_schema, document, variables=variables, operation_name=operation_name)
    if errors:
        return ExecutionResult(data=None, errors=errors)
    return execute(
        schema.graphql_schema,
        document,
        context_value=context,
        variable_values=variables,
        operation_name=operation_name,
        execution_context_class=DeferredExecutionContext,
    )


def execute_query(
    query: str,
    *,
    user=None,
    variables: dict | None = None,
    operation_name: str | None = None,
    batch: bool = True,
) -> ExecutionResult:
    """Runs a query outside HTTP (tests, benchmarks, shell) as /graphql does for `user` (None: anonymous).

    `batch=False` loads every related object with its own query: the naive baseline.
    """
    context = SimpleNamespace(user=user, dataloaders=get_dataloaders(batch=batch))
    return query_run(query, context=context, variables=variables, operation_name=operation_name)
