"""Counting SQL statements across databases: the operations state (DBOPS["DATABASE"]) has a
database of its own, so a query-count test must watch both, or it would pass by looking away."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from django.db import DEFAULT_DB_ALIAS, connections
from django.test.utils import CaptureQueriesContext


class CapturedQueries:
    def __init__(self) -> None:
        self.contexts: list[CaptureQueriesContext] = []

    @property
    def captured_queries(self) -> list[dict]:
        return [query for context in self.contexts for query in context.captured_queries]

    def __len__(self) -> int:
        return len(self.captured_queries)


@contextmanager
def queries_on_every_database() -> Iterator[CapturedQueries]:
    """Like CaptureQueriesContext, over the default and the operations database at once."""
    from dbops.conf import operations_alias

    captured = CapturedQueries()
    with ExitStack() as stack:
        for alias in dict.fromkeys([DEFAULT_DB_ALIAS, operations_alias()]):
            captured.contexts.append(stack.enter_context(CaptureQueriesContext(connections[alias])))
        yield captured
