"""What a query may cost, checked after validation and before any resolver runs.

The cost is an upper bound of the values a response can hold: each selected field weighs 1 (or its
FIELD_WEIGHTS entry) times the product of the limits of the lists around it, so `users(limit: 1000)
{ roles(limit: 20) { name } }` costs 1 + 1000 x (1 + 20 x 1). The walk stops at the first limit it
passes, so it takes at most as many steps as the cost allows, whatever the size the query asks for.
Fields are collected as execution collects them (one visit per fragment per selection set), so
fragments cannot multiply the walk. Introspection fields cost nothing here: their size is the schema's,
and only staff (or DEBUG) may ask for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)
from graphql.execution.execute import get_field_def
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.utilities import get_operation_ast

from multipult.graphql.types import LIST_LIMITS

# Fields that weigh more than one value: a JSON document of changes is many values.
FIELD_WEIGHTS: dict[str, int] = {"AuditLog.changes": 10}
PAGE_ARGUMENTS = ("limit", "first", "last")


@dataclass(frozen=True)
class QueryLimits:
    max_cost: int
    max_aliases: int
    max_root_fields: int

    @classmethod
    def from_settings(cls) -> QueryLimits:
        return cls(
            max_cost=settings.GRAPHQL_MAX_COST,
            max_aliases=settings.GRAPHQL_MAX_ALIASES,
            max_root_fields=settings.GRAPHQL_MAX_ROOT_FIELDS,
        )


class LimitExceeded(Exception):
    def __init__(self, message: str, node: FieldNode | None = None) -> None:
        super().__init__(message)
        self.node = node


@dataclass
class _Walk:
    schema: GraphQLSchema
    fragments: dict
    variables: dict
    limits: QueryLimits
    cost: int = 0
    aliases: int = 0

    def fields(self, selection_sets: list, parent_type: GraphQLObjectType) -> dict[str, list[FieldNode]]:
        """Response name -> its field nodes, as graphql-core's collect_fields merges them."""
        collected: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        pending = list(selection_sets)
        while pending:
            for selection in pending.pop(0).selections:
                if isinstance(selection, FieldNode):
                    collected.setdefault(selection.alias.value if selection.alias else selection.name.value, []).append(
                        selection
                    )
                elif isinstance(selection, InlineFragmentNode):
                    pending.append(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in visited:
                    visited.add(selection.name.value)
                    fragment = self.fragments.get(selection.name.value)
                    if fragment is not None:
                        pending.append(fragment.selection_set)
        return collected

    def selection(self, selection_sets: list, parent_type: GraphQLObjectType, multiplier: int) -> None:
        for nodes in self.fields(selection_sets, parent_type).values():
            node = nodes[0]
            if node.alias is not None and node.alias.value != node.name.value:
                self.aliases += 1
                if self.aliases > self.limits.max_aliases:
                    raise LimitExceeded(
                        f"The query uses more than {self.limits.max_aliases} aliases (GRAPHQL_MAX_ALIASES).", node
                    )
            if node.name.value.startswith("__"):
                continue  # __typename, and introspection (bounded by the schema, staff only)
            field_def = get_field_def(self.schema, parent_type, node)
            label = f"{parent_type.name}.{node.name.value}"
            self.cost += FIELD_WEIGHTS.get(label, 1) * multiplier
            if self.cost > self.limits.max_cost:
                raise LimitExceeded(
                    f"The query costs more than {self.limits.max_cost:,} (GRAPHQL_MAX_COST) at {label}: ask for "
                    "smaller lists (limit/first) or fewer fields.",
                    node,
                )
            child_type = get_named_type(field_def.type)
            if not isinstance(child_type, GraphQLObjectType):
                continue
            size = self.list_size(field_def, node, label)
            if size:
                self.selection([n.selection_set for n in nodes if n.selection_set], child_type, multiplier * size)

    def list_size(self, field_def, node: FieldNode, label: str) -> int:
        arguments = get_argument_values(field_def, node, self.variables)
        limit = LIST_LIMITS.get(label)
        given = [(name, arguments[name]) for name in PAGE_ARGUMENTS if arguments.get(name) is not None]
        for name, value in given:
            maximum = limit.maximum if limit else 0
            if not 0 <= value <= maximum:
                raise LimitExceeded(f"{name} of {label} must be between 0 and {maximum}, not {value}.", node)
        if given:
            return max(value for _, value in given)
        if limit is not None:
            return limit.default
        if is_list_type(get_nullable_type(field_def.type)) and label not in _ONE_PER_PARENT:
            raise LimitExceeded(f"{label} is a list without a limit; it cannot be costed.", node)
        return 1


# Lists whose length the parent field already bounds (a connection's page).
_ONE_PER_PARENT = frozenset({"UserConnection.edges"})


def query_limits_check(
    schema: GraphQLSchema,
    document: DocumentNode,
    *,
    variables: dict | None,
    operation_name: str | None,
    limits: QueryLimits | None = None,
) -> list[GraphQLError]:
    """The errors that refuse this (validated) operation before execution: [] when it may run."""
    limits = limits or QueryLimits.from_settings()
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return []  # execution reports the missing or ambiguous operation itself
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    if isinstance(coerced, list):
        return coerced
    root_type = schema.get_root_type(operation.operation)
    fragments = {node.name.value: node for node in document.definitions if hasattr(node, "type_condition")}
    walk = _Walk(schema=schema, fragments=fragments, variables=coerced, limits=limits)
    try:
        root_fields = walk.fields([operation.selection_set], root_type)
        if len(root_fields) > limits.max_root_fields:
            raise LimitExceeded(
                f"The query asks for {len(root_fields)} root fields, more than {limits.max_root_fields} "
                "(GRAPHQL_MAX_ROOT_FIELDS)."
            )
        walk.selection([operation.selection_set], root_type, 1)
    except LimitExceeded as refused:
        return [GraphQLError(str(refused), refused.node)]
    except GraphQLError as error:  # an argument that cannot be coerced
        return [error]
    return []
