"""GraphQL types of the domain. Every relation resolves through the request's DataLoaders.

Lists are nullable (their items are not), so a failing relation nulls only itself, not its parent.

Only the listed fields are exposed: the password hash (and anything token-like) never is.
"""

from __future__ import annotations

from functools import partial

import graphene
from graphene.relay.connection import connection_adapter, page_info_adapter
from graphene_django import DjangoObjectType
from graphql import GraphQLError
from graphql_relay import connection_from_array_slice, get_offset_with_default

from multipult.core.models import AuditLog, Concept, Dictionary, DictionaryEntry, Role, StoredFile, User
from multipult.graphql import dataloaders as loaders

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_RECENT_AUDIT_LOGS = 100


def _loader(info, loader_class):
    return info.context.dataloaders[loader_class]


def _user_of(info, user_id):
    return None if user_id is None else _loader(info, loaders.UserByIdLoader).load(user_id)


class RoleType(DjangoObjectType):
    users = graphene.List(graphene.NonNull(lambda: UserType))

    class Meta:
        model = Role
        name = "Role"
        fields = ("id", "name", "description", "created_at")

    @staticmethod
    def resolve_users(role, info):
        return _loader(info, loaders.UsersByRoleIdLoader).load(role.pk)


class UserType(DjangoObjectType):
    roles = graphene.List(graphene.NonNull(RoleType))
    files = graphene.List(graphene.NonNull(lambda: StoredFileType))
    recent_audit_logs = graphene.List(
        graphene.NonNull(lambda: AuditLogType),
        limit=graphene.Int(default_value=5, description=f"At most {MAX_RECENT_AUDIT_LOGS}."),
        description="This user's latest audit log entries, newest first.",
    )

    class Meta:
        model = User
        name = "User"
        # Never "password"; no token fields exist on the model, and none may be added here.
        fields = (
            "id",
            "username",
            "first_name",
            "last_name",
            "email",
            "phone",
            "is_active",
            "is_staff",
            "date_joined",
            "last_login",
        )

    @staticmethod
    def resolve_roles(user, info):
        return _loader(info, loaders.RolesByUserIdLoader).load(user.pk)

    @staticmethod
    def resolve_files(user, info):
        return _loader(info, loaders.FilesByUploaderIdLoader).load(user.pk)

    @staticmethod
    def resolve_recent_audit_logs(user, info, limit=5):
        if not 0 < limit <= MAX_RECENT_AUDIT_LOGS:
            raise GraphQLError(f"limit must be between 1 and {MAX_RECENT_AUDIT_LOGS}.")
        return _loader(info, loaders.RecentAuditLogsByActorIdLoader).load((user.pk, limit))


class ConceptType(DjangoObjectType):
    created_by = graphene.Field(UserType)

    class Meta:
        model = Concept
        name = "Concept"
        fields = ("id", "code", "name", "description", "created_at", "updated_at")

    @staticmethod
    def resolve_created_by(concept, info):
        return _user_of(info, concept.created_by_id)


class DictionaryEntryType(DjangoObjectType):
    class Meta:
        model = DictionaryEntry
        name = "DictionaryEntry"
        fields = ("id", "key", "value", "position")


class DictionaryType(DjangoObjectType):
    created_by = graphene.Field(UserType)
    entries = graphene.List(graphene.NonNull(DictionaryEntryType))

    class Meta:
        model = Dictionary
        name = "Dictionary"
        fields = ("id", "name", "description", "created_at")

    @staticmethod
    def resolve_created_by(dictionary, info):
        return _user_of(info, dictionary.created_by_id)

    @staticmethod
    def resolve_entries(dictionary, info):
        return _loader(info, loaders.EntriesByDictionaryIdLoader).load(dictionary.pk)


class StoredFileType(DjangoObjectType):
    uploaded_by = graphene.Field(UserType)

    class Meta:
        model = StoredFile
        name = "StoredFile"
        fields = ("id", "name", "content_type", "size", "sha256", "entity_type", "entity_id", "created_at")

    @staticmethod
    def resolve_uploaded_by(stored_file, info):
        return _user_of(info, stored_file.uploaded_by_id)


class AuditLogType(DjangoObjectType):
    actor = graphene.Field(UserType)
    action = graphene.String(required=True)

    class Meta:
        model = AuditLog
        name = "AuditLog"
        fields = ("id", "entity_type", "entity_id", "timestamp", "changes")

    @staticmethod
    def resolve_actor(audit_log, info):
        return _user_of(info, audit_log.actor_id)


class UserConnection(graphene.relay.Connection):
    total_count = graphene.Int(required=True)

    class Meta:
        node = UserType

    @staticmethod
    def resolve_total_count(connection, info):
        return connection.length


class QuerySetConnectionField(graphene.relay.ConnectionField):
    """A Relay connection over a queryset: one COUNT and one LIMIT/OFFSET query, at most MAX_PAGE_SIZE."""

    @classmethod
    def resolve_connection(cls, connection_type, args, resolved):
        first, last = args.get("first"), args.get("last")
        for name, value in (("first", first), ("last", last)):
            if value is not None and not 0 <= value <= MAX_PAGE_SIZE:
                raise GraphQLError(f"{name} must be between 0 and {MAX_PAGE_SIZE}.")
        if first is None and last is None:
            args = {**args, "first": DEFAULT_PAGE_SIZE}
        total = resolved.count()
        # The page's bounds, computed as graphql_relay does, so exactly one LIMIT/OFFSET query runs.
        start = min(get_offset_with_default(args.get("after"), -1) + 1, total)
        end = max(min(get_offset_with_default(args.get("before"), total), total), start)  # crossed cursors: empty
        if args.get("first") is not None:
            end = min(end, start + args["first"])
        if args.get("last") is not None:
            start = max(start, end - args["last"])
        page = list(resolved[start:end])
        connection = connection_from_array_slice(
            page,
            args,
            slice_start=start,
            array_length=total,
            array_slice_length=len(page),
            connection_type=partial(connection_adapter, connection_type),
            edge_type=connection_type.Edge,
            page_info_type=page_info_adapter,
        )
        connection.length = total
        return connection
