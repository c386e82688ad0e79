"""A candidate index in Django's terms: the model of its table, the `Meta.indexes` line an operator
pastes, and the `models.Index` object a migration adds. Both come from one description (`_parts`), so
the line printed and the index migrated are the same index."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import models

from dbops.instrumentation.index_candidates import Condition, IndexCandidate


@dataclass
class _Parts:
    fields: list[str] | None  # models.Index(fields=...) when every key is a plain column
    expressions: list[tuple[str, str, bool]] = field(default_factory=list)  # (field path, json key|"", descending)
    include: list[str] = field(default_factory=list)
    condition: dict[str, Any] = field(default_factory=dict)
    gin: bool = False


def model_columns(table: str) -> tuple[str | None, dict[str, str]]:
    """The Django model of a table ("app_label.Model", None when it has none) and its column -> field names."""
    for model in apps.get_models(include_auto_created=True):
        if model._meta.db_table == table:
            return model._meta.label, {f.column: f.name for f in model._meta.concrete_fields}
    return None, {}


def _parts(candidate: IndexCandidate, by_column: dict[str, str]) -> _Parts:
    name = lambda column: by_column.get(column, column)  # noqa: E731 - a one-line lookup
    parts = _Parts(fields=None, include=[name(c) for c in candidate.include], gin=candidate.method == "gin")
    if all(key.json_key is None for key in candidate.keys):
        parts.fields = [("-" if key.descending else "") + name(key.column) for key in candidate.keys]
    else:
        parts.expressions = [(name(k.column), k.json_key or "", k.descending) for k in candidate.keys]
    for condition in candidate.predicate:
        lookup, value = _lookup(condition, name(condition.column))
        parts.condition[lookup] = value
    return parts


def _lookup(condition: Condition, field_name: str) -> tuple[str, Any]:
    if condition.operator == "bool":
        return field_name, not condition.negated
    if condition.operator == "IS NULL":
        return f"{field_name}__isnull", not condition.negated
    literal = condition.literal or ""
    if literal.startswith("'"):
        value: Any = literal[1:-1].replace("''", "'")
    elif literal.lower() in ("true", "false"):
        value = literal.lower() == "true"
    else:
        value = float(literal) if "." in literal else int(literal)
    suffix = {"=": "", "<": "__lt", "<=": "__lte", ">": "__gt", ">=": "__gte"}[condition.operator]
    return field_name + suffix, value


def django_index_line(candidate: IndexCandidate, *, name: str, by_column: dict[str, str]) -> str:
    """The index as a line of `Meta.indexes`."""
    parts = _parts(candidate, by_column)
    arguments = []
    if parts.fields is not None:
        arguments.append(f"fields={json.dumps(parts.fields)}")
    for path, key, descending in parts.expressions:
        expression = f'KT("{path}__{key}")' if key else f'models.F("{path}")'
        arguments.append(expression + (".desc()" if descending else ""))
    if parts.include:
        arguments.append(f"include={json.dumps(parts.include)}")
    if parts.condition:
        arguments.append(f"condition=models.Q({', '.join(f'{k}={v!r}' for k, v in parts.condition.items())})")
    if parts.gin:
        arguments.append('opclasses=["jsonb_path_ops"]')
    arguments.append(f"name={json.dumps(name)}")
    return f"{'GinIndex' if parts.gin else 'models.Index'}({', '.join(arguments)})"


def django_index_object(candidate: IndexCandidate, *, name: str, by_column: dict[str, str]) -> models.Index:
    """The same index as a `models.Index` (a `GinIndex` for containment) for a migration."""
    from django.db.models.fields.json import KT

    parts = _parts(candidate, by_column)
    kwargs: dict[str, Any] = {"name": name}
    if parts.include:
        kwargs["include"] = parts.include
    if parts.condition:
        kwargs["condition"] = models.Q(**parts.condition)
    if parts.gin:
        from django.contrib.postgres.indexes import GinIndex

        return GinIndex(fields=parts.fields, opclasses=["jsonb_path_ops"], **kwargs)
    if parts.fields is not None:
        return models.Index(fields=parts.fields, **kwargs)
    expressions = []
    for path, key, descending in parts.expressions:
        expression = KT(f"{path}__{key}") if key else models.F(path)
        expressions.append(expression.desc() if descending else expression)
    return models.Index(*expressions, **kwargs)


def django_imports(lines: list[str]) -> list[str]:
    """The imports the printed Meta.indexes lines need."""
    needed = ["from django.db import models"]
    if any("KT(" in line for line in lines):
        needed.append("from django.db.models.fields.json import KT")
    if any(line.startswith("GinIndex(") for line in lines):
        needed.append("from django.contrib.postgres.indexes import GinIndex")
    return needed
