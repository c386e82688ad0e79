"""The /graphql schema: read queries over the domain, limit/offset lists and a Relay users connection.

Root lists filter on the indexed fields only, so every root query is an index scan.
"""

from __future__ import annotations

from types import SimpleNamespace

import graphene
from graphql import ExecutionResult, GraphQLError, execute, parse, validate

from multipult.core.models import AuditLog, Concept, Dictionary, Role, StoredFile, User
from multipult.graphql.dataloaders import get_dataloaders
from multipult.graphql.execution import DeferredExecutionContext, validation_rules
from multipult.graphql.types import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    AuditLogType,
    ConceptType,
    DictionaryType,
    QuerySetConnectionField,
    RoleType,
    StoredFileType,
    UserConnection,
    UserType,
)


def _page(queryset, limit: int, offset: int):
    if not 0 <= limit <= MAX_PAGE_SIZE:
        raise GraphQLError(f"limit must be between 0 and {MAX_PAGE_SIZE}.")
    if offset < 0:
        raise GraphQLError("offset must not be negative.")
    return queryset[offset : offset + limit]


def _paged_list(of_type, **filters):
    return graphene.List(
        graphene.NonNull(of_type),
        limit=graphene.Int(default_value=DEFAULT_PAGE_SIZE, description=f"At most {MAX_PAGE_SIZE}."),
        offset=graphene.Int(default_value=0),
        **filters,
    )


def _users(is_active=None, username=None):
    users = User.objects.order_by("-date_joined", "-id")  # user_active_joined_idx
    if is_active is not None:
        users = users.filter(is_active=is_active)
    if username is not None:
        users = users.filter(username=username)
    return users


class Query(graphene.ObjectType):
    users = _paged_list(UserType, is_active=graphene.Boolean(), username=graphene.String())
    users_connection = QuerySetConnectionField(UserConnection, is_active=graphene.Boolean(), username=graphene.String())
    user = graphene.Field(UserType, id=graphene.ID(required=True))
    roles = _paged_list(RoleType, name=graphene.String())
    concepts = _paged_list(ConceptType, code=graphene.String(), created_by_id=graphene.ID())
    dictionaries = _paged_list(DictionaryType, name=graphene.String())
    files = _paged_list(StoredFileType, entity_type=graphene.String(), entity_id=graphene.ID())
    audit_logs = _paged_list(
        AuditLogType, actor_id=graphene.ID(), entity_type=graphene.String(), entity_id=graphene.ID()
    )

    @staticmethod
    def resolve_users(root, info, limit, offset, is_active=None, username=None):
        return _page(_users(is_active, username), limit, offset)

    @staticmethod
    def resolve_users_connection(root, info, is_active=None, username=None, **connection_args):
        return _users(is_active, username)

    @staticmethod
    def resolve_user(root, info, id):
        return User.objects.filter(pk=id).first()

    @staticmethod
    def resolve_roles(root, info, limit, offset, name=None):
        roles = Role.objects.order_by("name")
        if name is not None:
            roles = roles.filter(name=name)
        return _page(roles, limit, offset)

    @staticmethod
    def resolve_concepts(root, info, limit, offset, code=None, created_by_id=None):
        concepts = Concept.objects.order_by("code")
        if code is not None:
            concepts = concepts.filter(code=code)
        if created_by_id is not None:
            concepts = concepts.filter(created_by_id=created_by_id).order_by("-created_at", "-id")
        return _page(concepts, limit, offset)

    @staticmethod
    def resolve_dictionaries(root, info, limit, offset, name=None):
        dictionaries = Dictionary.objects.order_by("name")
        if name is not None:
            dictionaries = dictionaries.filter(name=name)
        return _page(dictionaries, limit, offset)

    @staticmethod
    def resolve_files(root, info, limit, offset, entity_type=None, entity_id=None):
        files = StoredFile.objects.order_by("-created_at", "-id")
        if entity_type is not None:
            files = files.filter(entity_type=entity_type)
        if entity_id is not None:
            files = files.filter(entity_id=entity_id)
        return _page(files, limit, offset)

    @staticmethod
    def resolve_audit_logs(root, info, limit, offset, actor_id=None, entity_type=None, entity_id=None):
        logs = AuditLog.objects.order_by("-timestamp", "-id")
        if actor_id is not None:
            logs = logs.filter(actor_id=actor_id)
        if entity_type is not None:
            logs = logs.filter(entity_type=entity_type)
        if entity_id is not None:
            logs = logs.filter(entity_id=entity_id)
        return _page(logs, limit, offset)


schema = graphene.Schema(query=Query)


def execute_query(
    query: str,
    *,
    user=None,
    variables: dict | None = None,
    operation_name: str | None = None,
    batch: bool = True,
) -> ExecutionResult:
    """Runs a query outside HTTP (tests, benchmarks, shell) as /graphql does, minus authentication.

    `batch=False` loads every related object with its own query: the naive baseline.
    """
    document = parse(query)
    errors = validate(schema.graphql_schema, document, validation_rules())
    if errors:
        return ExecutionResult(data=None, errors=errors)
    return execute(
        schema.graphql_schema,
        document,
        context_value=SimpleNamespace(user=user, dataloaders=get_dataloaders(batch=batch)),
        variable_values=variables,
        operation_name=operation_name,
        execution_context_class=DeferredExecutionContext,
    )
