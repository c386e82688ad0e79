"""GraphQL types of the domain. Every relation resolves through the request's DataLoaders.

Lists are nullable (their items are not), so a failing relation nulls only itself, not its parent;
guarded (personal) fields are nullable for the same reason (multipult/graphql/access.py).

Only the listed fields are exposed: the password hash (and anything token-like) never is. Every list
takes a `limit` with a default and a maximum (LIST_LIMITS), which the cost check reads before execution.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import graphene
from graphene.relay.connection import connection_adapter, page_info_adapter
from graphene_django import DjangoObjectType
from graphql_relay import connection_from_array_slice, get_offset_with_default

from multipult.core.models import AuditLog, Concept, Dictionary, DictionaryEntry, Role, StoredFile, User
from multipult.graphql import dataloaders as loaders
from multipult.graphql.selection import selected_columns


class ListLimit(NamedTuple):
    default: int
    maximum: int


# "Type.field" -> the limit a list takes when none is given, and the largest it accepts.
LIST_LIMITS: dict[str, ListLimit] = {
    **{
        f"Query.{name}": ListLimit(100, 1000)
        for name in ("users", "usersConnection", "roles", "concepts", "dictionaries", "files", "auditLogs")
    },
    "User.roles": ListLimit(20, 100),
    "User.files": ListLimit(20, 100),
    "User.recentAuditLogs": ListLimit(5, 100),
    "Role.users": ListLimit(100, 1000),
    "Dictionary.entries": ListLimit(100, 1000),
}
MAX_PAGE_SIZE = LIST_LIMITS["Query.users"].maximum
DEFAULT_PAGE_SIZE = LIST_LIMITS["Query.users"].default


def limited_list(of_type, field: str, **arguments) -> graphene.List:
    limit = LIST_LIMITS[field]
    return graphene.List(
        graphene.NonNull(of_type),
        limit=graphene.Int(default_value=limit.default, description=f"At most {limit.maximum}."),
        **arguments,
    )


def _loader(info, loader_class):
    return info.context.dataloaders[loader_class]


def _user_of(info, user_id):
    if user_id is None:
        return None
    return _loader(info, loaders.UserByIdLoader).load((selected_columns(info, User, "User"), user_id))


def _rows_of(info, loader_class, model, type_name: str, parent_id, limit: int):
    return _loader(info, loader_class).load((selected_columns(info, model, type_name), limit, parent_id))


class ModelObjectType(DjangoObjectType):
    """A DjangoObjectType that also accepts the loaders' rows of its model (dataloaders.LoadedRow)."""

    class Meta:
        abstract = True

    @classmethod
    def is_type_of(cls, root, info):
        if isinstance(root, loaders.LoadedRow):
            return root.model is cls._meta.model
        return super().is_type_of(root, info)

    is_type_of.__func__.by_class = True  # the answer depends only on root's class (the execution caches it)


class RoleType(ModelObjectType):
    users = limited_list(lambda: UserType, "Role.users", description="Only for staff with core.view_user.")

    class Meta:
        model = Role
        name = "Role"
        fields = ("id", "name", "description", "created_at")

    @staticmethod
    def resolve_users(role, info, limit):
        return _rows_of(info, loaders.UsersByRoleIdLoader, User, "User", role.pk, limit)


class UserType(ModelObjectType):
    roles = limited_list(RoleType, "User.roles")
    files = limited_list(lambda: StoredFileType, "User.files")
    recent_audit_logs = limited_list(
        lambda: AuditLogType, "User.recentAuditLogs", description="This user's latest audit log entries, newest first."
    )
    # Personal: the user themself or holders of core.view_user (nullable, so a refusal nulls only the field).
    first_name = graphene.String()
    last_name = graphene.String()
    email = graphene.String()
    phone = graphene.String()

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
    def resolve_roles(user, info, limit):
        return _rows_of(info, loaders.RolesByUserIdLoader, Role, "Role", user.pk, limit)

    @staticmethod
    def resolve_files(user, info, limit):
        return _rows_of(info, loaders.FilesByUploaderIdLoader, StoredFile, "StoredFile", user.pk, limit)

    @staticmethod
    def resolve_recent_audit_logs(user, info, limit):
        return _rows_of(info, loaders.RecentAuditLogsByActorIdLoader, AuditLog, "AuditLog", user.pk, limit)


class ConceptType(ModelObjectType):
    created_by = graphene.Field(UserType)

    class Meta:
        model = Concept
        name = "Concept"
        fields = ("id", "code", "name", "description", "created_at", "updated_at")

    @staticmethod
    def resolve_created_by(concept, info):
        return _user_of(info, concept.created_by_id)


class DictionaryEntryType(ModelObjectType):
    class Meta:
        model = DictionaryEntry
        name = "DictionaryEntry"
        fields = ("id", "key", "value", "position")


class DictionaryType(ModelObjectType):
    created_by = graphene.Field(UserType)
    entries = limited_list(DictionaryEntryType, "Dictionary.entries")

    class Meta:
        model = Dictionary
        name = "Dictionary"
        fields = ("id", "name", "description", "created_at")

    @staticmethod
    def resolve_created_by(dictionary, info):
        return _user_of(info, dictionary.created_by_id)

    @staticmethod
    def resolve_entries(dictionary, info, limit):
        loader = loaders.EntriesByDictionaryIdLoader
        return _rows_of(info, loader, DictionaryEntry, "DictionaryEntry", dictionary.pk, limit)


class StoredFileType(ModelObjectType):
    uploaded_by = graphene.Field(UserType)
    storage_path = graphene.String(description="Personal: the uploader or holders of core.view_storedfile.")

    class Meta:
        model = StoredFile
        name = "StoredFile"
        fields = ("id", "name", "content_type", "size", "sha256", "entity_type", "entity_id", "created_at")

    @staticmethod
    def resolve_uploaded_by(stored_file, info):
        return _user_of(info, stored_file.uploaded_by_id)


class AuditLogType(ModelObjectType):
    actor = graphene.Field(UserType)
    action = graphene.String(required=True)
    # Personal: the actor or holders of core.view_auditlog.
    changes = graphene.JSONString()
    ip_address = graphene.String()

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
    """A Relay connection over a queryset: one COUNT and one LIMIT/OFFSET query (first/last checked beforehand)."""

    @classmethod
    def resolve_connection(cls, connection_type, args, resolved):
        first, last = args.get("first"), args.get("last")
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
