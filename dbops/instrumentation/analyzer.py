"""Query analyzer: query plans (the engine's EXPLAIN, PostgreSQL's JSON plan format) as an indented
tree, the costliest nodes marked, and index advice proven by the planner (index_advice).

`query_analyze` explains one statement (EXPLAIN ANALYZE only on request, always inside a transaction
that is rolled back, so writes leave no trace). Sequential scans over large tables that filter or feed a
sort get candidate indexes, each costed with a hypothetical index; the ones the planner chooses and
that make the statement at least `min_factor` cheaper are advised, with a `CREATE INDEX` and a Django
`models.Index(...)` line. `slow_queries_analyze` does the same for the slowest captured statements.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlparse
from django.db import DEFAULT_DB_ALIAS

from dbops.engines import get_connector
from dbops.exceptions import AnalyzerError
from dbops.instrumentation.index_advice import (
    MIN_COST_FACTOR,
    UNVALIDATED,
    IgnoredIndex,
    IndexSuggestion,
    index_advise,
)
from dbops.instrumentation.index_django import django_imports
from dbops.instrumentation.plans import PlanNode, plan_build

LARGE_TABLE_ROWS = 10_000  # below this a sequential scan is cheap enough not to advise an index
EXPLAINABLE = {"SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "VALUES", "TABLE"}
WRITES = {"INSERT", "UPDATE", "DELETE"}
STATEMENT_TIMEOUT = 60.0  # seconds
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
_PARAMETER = re.compile(r"\$(\d+)")

__all__ = ["PlanNode", "IndexSuggestion", "QueryAnalysis", "query_analyze", "analysis_render", "statement_parse"]


@dataclass
class QueryAnalysis:
    sql: str
    analyzed: bool
    generic_plan: bool
    total_cost: float
    planning_ms: float | None
    execution_ms: float | None
    plan: PlanNode
    suggestions: list[IndexSuggestion]  # advised: proven by the planner, or unvalidated without HypoPG
    raw_plan: list[dict[str, Any]]
    rejected: list[IndexSuggestion] = field(default_factory=list)
    ignored_indexes: list[IgnoredIndex] = field(default_factory=list)
    hypothetical_unavailable: str = ""
    min_factor: float = MIN_COST_FACTOR
    source: dict[str, Any] = field(default_factory=dict)  # where a --slow statement came from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def uses_index(self, index_name: str) -> bool:
        return any(node.index_name == index_name for node in self.plan.walk())


@dataclass(frozen=True)
class Statement:
    sql: str  # one statement, Django's %s placeholders numbered as $1, $2...
    parameter_count: int
    is_write: bool


def statement_parse(sql: str) -> Statement:
    """One explainable statement, or AnalyzerError saying what is wrong with it."""
    sql = _numbered_placeholders(_single_statement(sql))
    parameter_count = max((int(n) for n in _PARAMETER.findall(_STRING_LITERAL.sub("''", sql))), default=0)
    first_word = sql.split(None, 1)[0].upper().lstrip("(")
    is_write = first_word in WRITES or (
        first_word == "WITH" and re.search(r"\b(INSERT|UPDATE|DELETE)\b", _STRING_LITERAL.sub("''", sql), re.I)
    )
    return Statement(sql=sql, parameter_count=parameter_count, is_write=bool(is_write))


def query_analyze(
    *,
    sql: str,
    analyze: bool = False,
    using: str = DEFAULT_DB_ALIAS,
    large_table_rows: int = LARGE_TABLE_ROWS,
    min_factor: float = MIN_COST_FACTOR,
    timeout: float = STATEMENT_TIMEOUT,
) -> QueryAnalysis:
    """Explains one statement; with `analyze` runs it too, in a transaction that is always rolled back.

    A statement with `$n` placeholders (as `pg_stat_statements` shows them) gets its generic plan
    through PREPARE; it cannot be executed, so `analyze` is ignored for it. `timeout` (seconds) bounds
    the statement and every plan made for it.
    """
    if min_factor < 1:
        raise AnalyzerError(f"The cost factor must be at least 1; got {min_factor:g}.", parameter="min_factor")
    if timeout <= 0:
        raise AnalyzerError(f"The timeout must be more than 0 seconds; got {timeout:g}.", parameter="timeout")
    statement = statement_parse(sql)
    connector = get_connector(using)
    if not connector.supports_plans:
        raise AnalyzerError(f"analyze_query needs PostgreSQL; database {using!r} is {connector.engine}.")
    generic = statement.parameter_count > 0
    analyze = analyze and not generic
    timeout_ms = int(timeout * 1000)
    raw_plan = connector.explain(
        statement.sql, analyze=analyze, parameter_count=statement.parameter_count, timeout_ms=timeout_ms, verbose=True
    )
    root = raw_plan[0]
    plan = plan_build(root["Plan"], analyzed=analyze)
    advice = index_advise(
        connector=connector,
        sql=statement.sql,
        plan=plan,
        parameter_count=statement.parameter_count,
        large_table_rows=large_table_rows,
        min_factor=min_factor,
        timeout_ms=timeout_ms,
    )
    return QueryAnalysis(
        sql=statement.sql,
        analyzed=analyze,
        generic_plan=generic,
        total_cost=plan.total_cost,
        planning_ms=root.get("Planning Time"),
        execution_ms=root.get("Execution Time"),
        plan=plan,
        suggestions=advice.suggestions,
        raw_plan=raw_plan,
        rejected=advice.rejected,
        ignored_indexes=advice.ignored_indexes,
        hypothetical_unavailable=advice.hypothetical_unavailable,
        min_factor=min_factor,
    )


def _single_statement(sql: str) -> str:
    statements = [s.strip().rstrip(";").strip() for s in sqlparse.split(sql or "") if s.strip().rstrip(";").strip()]
    if not statements:
        raise AnalyzerError("No SQL statement given.")
    if len(statements) > 1:
        raise AnalyzerError(f"Give exactly one statement; got {len(statements)}.")
    statement = statements[0]
    first_word = statement.split(None, 1)[0].upper().lstrip("(")
    if first_word not in EXPLAINABLE:
        raise AnalyzerError(f"Only {', '.join(sorted(EXPLAINABLE))} statements can be analyzed; got {first_word!r}.")
    return statement


def _numbered_placeholders(sql: str) -> str:
    """Django-style `%s` placeholders (as the profiler records them) become `$1`, `$2`... outside literals."""
    parts = re.split(r"('(?:[^']|'')*')", sql)
    counter = iter(range(1, len(sql) + 1))
    for index in range(0, len(parts), 2):
        parts[index] = re.sub(r"%s", lambda _match: f"${next(counter)}", parts[index])
    return "".join(parts)


def analysis_render(analysis: QueryAnalysis) -> list[str]:
    """The plan as an indented tree (`<== costliest` marks where the cost or time goes), then every
    candidate index with its estimated cost before and after, accepted or rejected and why."""
    header = f"Plan: estimated cost {analysis.total_cost:,.2f}"
    if analysis.planning_ms is not None:
        header += f", planning {analysis.planning_ms:.3f} ms"
    if analysis.execution_ms is not None:
        header += f", execution {analysis.execution_ms:.3f} ms (ANALYZE, rolled back)"
    if analysis.generic_plan:
        header += " (generic plan: parameters unknown, not executed)"
    lines = [header]

    def render(node: PlanNode, depth: int) -> None:
        pad = "   " * depth
        label = f"{node.label}  (cost={node.startup_cost:.2f}..{node.total_cost:.2f} rows={node.plan_rows:,})"
        if node.actual_ms is not None:
            label += f" (actual {node.actual_ms:.3f} ms rows={node.actual_rows:,} loops={node.loops})"
        if node.costly:
            label += f"  <== costliest: {node.share:.0%} of the {'time' if analysis.analyzed else 'cost'}"
        lines.append(f"{pad}-> {label}")
        for key, condition in node.conditions.items():
            lines.append(f"{pad}     {key}: {condition}")
        if node.rows_removed_by_filter:
            lines.append(f"{pad}     Rows Removed by Filter: {node.rows_removed_by_filter:,}")
        if node.shared_hit_blocks is not None:
            lines.append(f"{pad}     Buffers: shared hit={node.shared_hit_blocks:,} read={node.shared_read_blocks:,}")
        for worker in node.workers:
            lines.append(f"{pad}     {worker.worker}: {worker.actual_ms:.3f} ms, {worker.actual_rows:,} rows")
        for child in node.children:
            render(child, depth + 1)

    render(analysis.plan, 0)
    lines += advice_render(analysis)
    return lines


def advice_render(analysis: QueryAnalysis) -> list[str]:
    candidates = analysis.suggestions + analysis.rejected
    if not candidates:
        return ["Index advice: none (no sequential scan of a large table that filters or sorts)."] + _ignored(analysis)
    lines = []
    if analysis.hypothetical_unavailable:
        lines.append(f"Hypothetical indexes unavailable: {analysis.hypothetical_unavailable}")
        lines.append("The advice below is UNVALIDATED: the planner was not asked whether it would use it.")
    else:
        lines.append(
            f"Index candidates (each costed by the planner as a hypothetical index; advised when it is "
            f"chosen and the cost drops {analysis.min_factor:g}x or more):"
        )
    for suggestion in candidates:
        lines.append(f"  {suggestion_headline(suggestion)}")
        if suggestion in analysis.suggestions:
            lines.append(f"    {suggestion.reason}")
            lines.append(f"    SQL:    {suggestion.create_index_sql}")
            target = f"  # in {suggestion.model}.Meta.indexes" if suggestion.model else "  # table has no Django model"
            lines.append(f"    Django: {suggestion.django_index}{target}")
    if analysis.suggestions:
        imports = "; ".join(django_imports([s.django_index for s in analysis.suggestions]))
        lines.append(f"Index advice: {len(analysis.suggestions)} index(es) above (Meta.indexes needs: {imports}).")
    else:
        lines.append("Index advice: none (no candidate made the statement cheap enough).")
    return lines + _ignored(analysis)


def suggestion_headline(suggestion: IndexSuggestion) -> str:
    """`ACCEPTED name (keys): cost A -> B (Nx): why` in one line."""
    what = f"{suggestion.name} ({', '.join(suggestion.columns)}"
    candidate = suggestion.candidate
    if candidate and candidate.include:
        what += f" INCLUDE {', '.join(candidate.include)}"
    if candidate and candidate.predicate:
        what += " WHERE " + " AND ".join(c.sql(lambda name: name) for c in candidate.predicate)
    what += f"; {suggestion.kind})"
    after = f"{suggestion.cost_after:,.2f} ({suggestion.cost_factor:,.1f}x)" if suggestion.cost_after else "-"
    status = "UNVALIDATED" if suggestion.status == UNVALIDATED else suggestion.status.upper()
    return f"{status} {what}: cost {suggestion.cost_before:,.2f} -> {after}: {suggestion.verdict}"


def _ignored(analysis: QueryAnalysis) -> list[str]:
    from django.template.defaultfilters import filesizeformat

    if not analysis.ignored_indexes:
        return []
    lines = ["Existing indexes the planner ignores for this statement (not counted as covering it):"]
    for index in analysis.ignored_indexes:
        lines.append(f"  - {index.name} on {index.table} ({filesizeformat(index.size_bytes)}): {index.reason}")
    return lines
