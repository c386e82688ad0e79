"""At most N rows per key in one statement: the portable form (a window over the keys' rows).

`Connector.rows_per_key` calls this; engines with a cheaper plan override it (PostgreSQL: a LATERAL
join, one short index scan per key instead of ranking every row of every key).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import F, QuerySet, Window
from django.db.models.expressions import OrderBy
from django.db.models.functions import RowNumber

KEY_ATTRIBUTE = "dbops_key"  # each returned row carries its key under this attribute


def order_expressions(queryset: QuerySet) -> list[OrderBy]:
    """The queryset's ORDER BY as expressions (for a window's own ordering)."""
    ordering = queryset.query.order_by or queryset.model._meta.ordering or ["pk"]
    expressions = []
    for item in ordering:
        if hasattr(item, "resolve_expression"):
            expressions.append(item if isinstance(item, OrderBy) else item.asc())
        elif item.startswith("-"):
            expressions.append(F(item[1:]).desc())
        else:
            expressions.append(F(item).asc())
    return expressions


def rows_per_key_window(queryset: QuerySet, *, key_field: str, keys: Sequence[Any], limit: int) -> Iterable[Any]:
    """The rows, lazily (the caller's loop is the call site the profiler names)."""
    if not keys or limit <= 0:
        return []
    return (
        queryset.filter(**{f"{key_field}__in": list(keys)})
        .annotate(
            **{KEY_ATTRIBUTE: F(key_field)},
            dbops_rank=Window(RowNumber(), partition_by=[F(key_field)], order_by=order_expressions(queryset)),
        )
        .filter(dbops_rank__lte=limit)
        .order_by(KEY_ATTRIBUTE, "dbops_rank")
    )
