"""Who may see which GraphQL field: one declaration per type, applied to the built schema.

Every field of every object type of the schema has a rule in `FIELD_ACCESS`; `access_apply` refuses
a schema with a field that has none (and tests/graphql/test_access.py walks the schema and queries
every guarded field as a stranger and as someone allowed). A denied field resolves to null with an
error on that field only; the rest of the response stands. Public fields keep their resolvers
untouched, so the check costs nothing on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from graphql import GraphQLError, GraphQLSchema, default_field_resolver, is_non_null_type
from graphql.type import GraphQLObjectType


class Viewer:
    """The caller of one request: who they are and, cached for the request, which permissions they hold."""

    def __init__(self, user) -> None:
        self.user = user
        self.authenticated = bool(getattr(user, "is_authenticated", False))
        self.pk = user.pk if self.authenticated else None
        self.is_staff = bool(self.authenticated and user.is_active and user.is_staff)
        self._perms: dict[str, bool] = {}

    def has_perm(self, perm: str) -> bool:
        if not self.authenticated:
            return False
        allowed = self._perms.get(perm)
        if allowed is None:
            allowed = self._perms[perm] = self.user.has_perm(perm)
        return allowed


def viewer_of(context: Any) -> Viewer:
    """The request's Viewer, made once per context (an HttpRequest or execute_query's namespace)."""
    viewer = getattr(context, "graphql_viewer", None)
    if viewer is None:
        viewer = context.graphql_viewer = Viewer(getattr(context, "user", None))
    return viewer


@dataclass(frozen=True)
class Rule:
    """Public unless `permission` is set: then the owner (`owner_id` of the object) or a holder of it."""

    permission: str | None = None
    owner_attr: str | None = None  # the object's attribute holding its owner's user id
    staff_only: bool = False
    why: str = field(default="", compare=False)

    @property
    def public(self) -> bool:
        return self.permission is None

    def allows(self, viewer: Viewer, source: Any) -> bool:
        if self.public:
            return True
        if self.staff_only:
            return viewer.is_staff and viewer.has_perm(self.permission)
        if viewer.pk is not None and self.owner_attr is not None and _owner_id(source, self.owner_attr) == viewer.pk:
            return True
        return viewer.has_perm(self.permission)


PUBLIC = Rule()


def _owner_id(source: Any, owner_attr: str) -> Any:
    return source.get(owner_attr) if isinstance(source, dict) else getattr(source, owner_attr, None)


def personal(model_permission: str, owner_attr: str) -> Rule:
    return Rule(permission=model_permission, owner_attr=owner_attr, why=f"the owner and holders of {model_permission}")


def staff_with(model_permission: str) -> Rule:
    return Rule(permission=model_permission, staff_only=True, why=f"staff users with {model_permission}")


OWN_USER = personal("core.view_user", "id")
OWN_AUDIT_LOG = personal("core.view_auditlog", "actor_id")
OWN_FILE = personal("core.view_storedfile", "uploaded_by_id")
USER_LISTS = staff_with("core.view_user")


def _public(*names: str) -> dict[str, Rule]:
    return dict.fromkeys(names, PUBLIC)


FIELD_ACCESS: dict[str, dict[str, Rule]] = {
    "Query": {
        **_public("user", "roles", "concepts", "dictionaries", "files", "auditLogs"),
        "users": USER_LISTS,
        "usersConnection": USER_LISTS,
    },
    "User": {
        **_public("id", "username", "isActive", "isStaff", "dateJoined", "roles", "files", "recentAuditLogs"),
        **dict.fromkeys(("firstName", "lastName", "email", "phone", "lastLogin"), OWN_USER),
    },
    "Role": {**_public("id", "name", "description", "createdAt"), "users": USER_LISTS},
    "Concept": _public("id", "code", "name", "description", "createdAt", "updatedAt", "createdBy"),
    "Dictionary": _public("id", "name", "description", "createdAt", "createdBy", "entries"),
    "DictionaryEntry": _public("id", "key", "value", "position"),
    "StoredFile": {
        **_public("id", "name", "contentType", "size", "sha256", "entityType", "entityId", "createdAt", "uploadedBy"),
        "storagePath": OWN_FILE,
    },
    "AuditLog": {
        **_public("id", "action", "entityType", "entityId", "timestamp", "actor"),
        **dict.fromkeys(("changes", "ipAddress"), OWN_AUDIT_LOG),
    },
    # The connection's own parts: what they carry is decided at usersConnection.
    "UserConnection": _public("pageInfo", "edges", "totalCount"),
    "UserEdge": _public("node", "cursor"),
    "PageInfo": _public("hasNextPage", "hasPreviousPage", "startCursor", "endCursor"),
}


def owner_attributes(type_name: str) -> set[str]:
    """The attributes the rules of a type read from its objects (so loaders always fetch them)."""
    return {rule.owner_attr for rule in FIELD_ACCESS.get(type_name, {}).values() if rule.owner_attr}


def schema_object_types(schema: GraphQLSchema) -> list[GraphQLObjectType]:
    """The schema's own object types (introspection's __Schema, __Type... are graphql-core's)."""
    return [
        graphql_type
        for name, graphql_type in schema.type_map.items()
        if isinstance(graphql_type, GraphQLObjectType) and not name.startswith("__")
    ]


def _guarded(resolve: Callable, rule: Rule, label: str) -> Callable:
    message = f"Not permitted: {label} is visible only to {rule.why}."

    def resolve_if_allowed(source, info, **args):
        if not rule.allows(viewer_of(info.context), source):
            raise GraphQLError(message)
        return resolve(source, info, **args)

    # The execution context's fast path checks the rule itself and reads allowed plain fields directly.
    resolve_if_allowed.access_rule = rule
    resolve_if_allowed.unguarded = resolve
    return resolve_if_allowed


def access_apply(schema: GraphQLSchema, declarations: dict[str, dict[str, Rule]] = FIELD_ACCESS) -> GraphQLSchema:
    """Wraps the resolver of every non-public field; refuses fields without a rule (and rules without a field)."""
    problems = []
    for object_type in schema_object_types(schema):
        rules = declarations.get(object_type.name, {})
        fields = object_type.fields
        problems += [f"{object_type.name}.{name} has no access rule" for name in fields if name not in rules]
        problems += [f"{object_type.name}.{name} has a rule but no field" for name in rules if name not in fields]
        for name, graphql_field in object_type.fields.items():
            rule = rules.get(name)
            if rule is None or rule.public:
                continue
            if is_non_null_type(graphql_field.type):
                problems.append(f"{object_type.name}.{name} is guarded, so it must be nullable")
            resolve = graphql_field.resolve or default_field_resolver
            graphql_field.resolve = _guarded(resolve, rule, f"{object_type.name}.{name}")
    if problems:
        raise ImproperlyConfigured("GraphQL field access (multipult/graphql/access.py): " + "; ".join(problems) + ".")
    return schema
