"""Which columns a query needs: the selected fields of a GraphQL field's objects, as model columns.

Loaders and root lists fetch only these (`.only(...)`), plus the primary key and what the access rules
read (an owner's id), so the password hash, never in the schema, is never read either.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Model
from graphene.utils.str_converters import to_camel_case
from graphql import FieldNode, FragmentSpreadNode, GraphQLResolveInfo, InlineFragmentNode

from multipult.graphql.access import owner_attributes

_column_maps: dict[type[Model], dict[str, str]] = {}


def _columns_of(model: type[Model]) -> dict[str, str]:
    """GraphQL field name -> column attribute, for every concrete field (createdBy -> created_by_id)."""
    columns = _column_maps.get(model)
    if columns is None:
        columns = _column_maps[model] = {to_camel_case(f.name): f.attname for f in model._meta.concrete_fields}
    return columns


def _subfields(nodes: Iterable[FieldNode], fragments: dict) -> dict[str, list[FieldNode]]:
    """The fields selected under `nodes`, by name, through fragments and inline fragments."""
    found: dict[str, list[FieldNode]] = {}
    pending = [node.selection_set for node in nodes if node.selection_set is not None]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                found.setdefault(selection.name.value, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
                pending.append(fragments[selection.name.value].selection_set)
    return found


def selected_columns(info: GraphQLResolveInfo, model: type[Model], type_name: str, *, through: tuple = ()) -> tuple:
    """The columns of `model` that the objects of this field need (sorted: a stable loader key).

    `through` descends first, e.g. ("edges", "node") for a connection's nodes."""
    cache = info.context.__dict__.setdefault("graphql_columns", {})
    cache_key = (id(info.field_nodes[0]), model, through)
    columns = cache.get(cache_key)
    if columns is None:
        nodes = list(info.field_nodes)
        for name in through:
            nodes = _subfields(nodes, info.fragments).get(name, [])
        column_map = _columns_of(model)
        wanted = {column_map[name] for name in _subfields(nodes, info.fragments) if name in column_map}
        wanted |= {model._meta.pk.attname, *owner_attributes(type_name)}
        columns = cache[cache_key] = tuple(sorted(wanted))
    return columns
