"""The slowest statements worth analyzing: from the server's statement statistics (`pg_stat_statements`,
read through the engine) and the profiler's store.

The profiler's store (`dbops.instrumentation.profiling.slow_queries_top`) is optional: without it only
`pg_stat_statements` is read; without that extension (not preloaded, no permission) only the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS

from dbops.engines import get_connector
from dbops.exceptions import AnalyzerError, FeatureUnavailable
from dbops.instrumentation.analyzer import LARGE_TABLE_ROWS, STATEMENT_TIMEOUT, QueryAnalysis, query_analyze
from dbops.instrumentation.index_advice import MIN_COST_FACTOR


@dataclass
class SlowStatement:
    sql: str
    source: str  # "pg_stat_statements" | "profiler"
    calls: int | None = None
    mean_ms: float | None = None
    reference: Any = None  # queryid, or the profiler row's id


@dataclass
class SlowAnalysis:
    statement: SlowStatement
    analysis: QueryAnalysis | None
    error: str = ""


@dataclass
class SlowReport:
    analyses: list[SlowAnalysis] = field(default_factory=list)
    sources_unavailable: dict[str, str] = field(default_factory=dict)
    total: int = 0  # distinct statements captured; `analyses` holds the slowest `limit` of them


def slow_statements_top(*, limit: int | None = 10, using: str = DEFAULT_DB_ALIAS) -> SlowReport:
    """The slowest captured statements of both sources (by mean time, each statement once), at most
    `limit` of them (None: all), not analyzed (cheap: for listings); `total` counts them all."""
    if limit is not None and limit < 1:
        raise AnalyzerError(f"The number of statements must be at least 1; got {limit}.", parameter="limit")
    report = SlowReport()
    statements: dict[str, SlowStatement] = {}
    for source, reader in (("profiler", _profiler_top), ("pg_stat_statements", _pg_stat_statements_top)):
        try:
            captured = reader(limit=None, using=using)  # all: only then is the total known
        except _SourceUnavailable as exc:
            report.sources_unavailable[source] = str(exc)
            continue
        for statement in captured:
            statements.setdefault(" ".join(statement.sql.split()).lower(), statement)
    slowest = sorted(statements.values(), key=lambda statement: -(statement.mean_ms or 0))
    report.total = len(slowest)
    report.analyses = [SlowAnalysis(statement, None) for statement in slowest[:limit]]
    return report


def slow_queries_analyze(
    *,
    limit: int | None = 10,
    analyze: bool = False,
    using: str = DEFAULT_DB_ALIAS,
    large_table_rows: int = LARGE_TABLE_ROWS,
    min_factor: float = MIN_COST_FACTOR,
    timeout: float = STATEMENT_TIMEOUT,
) -> SlowReport:
    """Analyzes the slowest statements; one that cannot be explained is reported, not fatal."""
    report = slow_statements_top(limit=limit, using=using)
    for item in report.analyses:
        options = {"large_table_rows": large_table_rows, "min_factor": min_factor, "timeout": timeout}
        _analyze_into(item, using=using, analyze=analyze, **options)
    return report


def slow_statement_analyze(
    *, source: str, reference: str, using: str = DEFAULT_DB_ALIAS, large_table_rows: int = LARGE_TABLE_ROWS
) -> SlowAnalysis:
    """The plan of one captured statement, by source and reference (queryid, or the profiler row's id);
    never executed (EXPLAIN only). Used by the admin's slow-statement pages."""
    if not str(reference).lstrip("-").isdigit():
        raise AnalyzerError(f"A slow-statement reference is a number; got {reference!r}.")
    if source == "pg_stat_statements":
        statements = _pg_stat_statements_top(limit=1, using=using, queryid=reference)
    elif source == "profiler":
        statements = _profiler_top(limit=1, using=using, pk=reference)
    else:
        raise AnalyzerError(f"Unknown slow-statement source {source!r}.")
    if not statements:
        # pg_stat_statements evicts its least-used entries when full, so a listed one can be gone a moment later.
        raise AnalyzerError(f"Statement {reference} is not (or no longer) captured in {source}.")
    item = SlowAnalysis(statements[0], None)
    _analyze_into(item, analyze=False, using=using, large_table_rows=large_table_rows)
    return item


def _analyze_into(item: SlowAnalysis, *, using: str, **options) -> None:
    statement = item.statement
    try:
        item.analysis = query_analyze(sql=statement.sql, using=using, **options)
    except AnalyzerError as exc:
        item.error = str(exc)
        return
    item.analysis.source = {"source": statement.source, "calls": statement.calls, "mean_ms": statement.mean_ms}


class _SourceUnavailable(Exception):
    pass


def _pg_stat_statements_top(*, limit: int | None, using: str, queryid: str | None = None) -> list[SlowStatement]:
    try:
        rows = get_connector(using).statement_statistics_top(limit=limit, queryid=queryid)
    except FeatureUnavailable as exc:
        raise _SourceUnavailable(str(exc)) from exc
    return [
        SlowStatement(sql=query, source="pg_stat_statements", calls=calls, mean_ms=mean_ms, reference=queryid)
        for queryid, query, calls, mean_ms, _total_ms in rows
    ]


def _profiler_top(*, limit: int | None, using: str, pk: str | None = None) -> list[SlowStatement]:
    try:  # the profiler's store (issue 5) may not be installed yet
        from dbops.instrumentation.profiling import slow_queries_top
    except ImportError as exc:
        raise _SourceUnavailable("the profiler's slow-query store is not installed") from exc
    if pk is None:
        rows = slow_queries_top(limit=limit)
    else:
        from dbops.models.profiling import SlowQuery

        rows = list(SlowQuery.objects.filter(pk=pk))
    statements = []
    for row in rows:
        # The profiler masks literals as "?" and keeps Django's %s; both become $n placeholders.
        sql = _field(row, "sample_sql", "sql", "statement")
        sql = sql.replace("?", "%s") if sql else sql
        if sql:
            statements.append(
                SlowStatement(
                    sql=sql,
                    source="profiler",
                    calls=_field(row, "count", "calls"),
                    mean_ms=_field(row, "mean_ms", "max_ms"),
                    reference=_field(row, "pk", "id"),
                )
            )
    return statements


def _field(row: Any, *names: str) -> Any:
    for name in names:
        value = row.get(name) if isinstance(row, dict) else getattr(row, name, None)
        if value is not None:
            return value
    return None
