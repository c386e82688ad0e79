"""Query analyzer: query plans (the engine's EXPLAIN, PostgreSQL's JSON plan format) as an indented
tree, the costliest nodes marked, and index advice.

`query_analyze` explains one statement (EXPLAIN ANALYZE only on request, always inside a transaction
that is rolled back, so writes leave no trace). Sequential scans over large tables filtered on
columns that no index leads get a concrete `CREATE INDEX` and a Django `models.Index(...)` line.
`slow_queries_analyze` does the same for the slowest statements of `pg_stat_statements` and of the
profiler's slow-query store (when that is installed).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlparse
from django.apps import apps
from django.db import DEFAULT_DB_ALIAS

from dbops.engines import Connector, get_connector
from dbops.engines.base import TableFacts
from dbops.exceptions import AnalyzerError

LARGE_TABLE_ROWS = 10_000  # below this a sequential scan is cheap enough not to advise an index
EXPLAINABLE = {"SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "VALUES", "TABLE"}
STATEMENT_TIMEOUT_MS = 60_000
MAX_INDEX_COLUMNS = 3
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
# Casts like ::text, ::character varying, ::timestamp with time zone[] (their words are not columns).
_CAST = re.compile(r'::\s*(?:"[^"]+"|[a-z_]\w*(?:\s+(?:varying|precision|with|without|time|zone)\b)*)(?:\[\])?', re.I)
_IDENTIFIER = re.compile(r'"((?:[^"]|"")+)"|\b([a-z_][a-z0-9_$]*)\b', re.I)
_PARAMETER = re.compile(r"\$(\d+)")


@dataclass
class PlanNode:
    node_type: str
    relation: str | None
    alias: str | None
    index_name: str | None
    detail: str
    conditions: dict[str, str]
    startup_cost: float
    total_cost: float
    plan_rows: int
    self_cost: float = 0.0
    actual_ms: float | None = None  # inclusive, all loops
    self_ms: float | None = None
    actual_rows: int | None = None
    loops: int | None = None
    rows_removed_by_filter: int | None = None
    shared_hit_blocks: int | None = None
    shared_read_blocks: int | None = None
    share: float = 0.0  # this node's exclusive share of the whole plan's cost (or time with ANALYZE)
    costly: bool = False
    children: list[PlanNode] = field(default_factory=list)

    def walk(self) -> Iterator[PlanNode]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class IndexSuggestion:
    table: str
    columns: list[str]
    estimated_table_rows: int
    reason: str
    create_index_sql: str
    django_index: str
    model: str | None  # "app_label.ModelName" whose Meta.indexes takes the django_index line


@dataclass
class QueryAnalysis:
    sql: str
    analyzed: bool
    generic_plan: bool
    total_cost: float
    planning_ms: float | None
    execution_ms: float | None
    plan: PlanNode
    suggestions: list[IndexSuggestion]
    raw_plan: list[dict[str, Any]]
    source: dict[str, Any] = field(default_factory=dict)  # where a --slow statement came from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def uses_index(self, index_name: str) -> bool:
        return any(node.index_name == index_name for node in self.plan.walk())


def query_analyze(
    *,
    sql: str,
    analyze: bool = False,
    using: str = DEFAULT_DB_ALIAS,
    large_table_rows: int = LARGE_TABLE_ROWS,
    timeout_ms: int = STATEMENT_TIMEOUT_MS,
) -> QueryAnalysis:
    """Explains one statement; with `analyze` runs it too, in a transaction that is always rolled back.

    A statement with `$n` placeholders (as `pg_stat_statements` shows them) gets its generic plan
    through PREPARE; it cannot be executed, so `analyze` is ignored for it.
    """
    sql = _numbered_placeholders(_single_statement(sql))
    connector = get_connector(using)
    if not connector.supports_plans:
        raise AnalyzerError(f"analyze_query needs PostgreSQL; database {using!r} is {connector.engine}.")
    parameter_count = max((int(n) for n in _PARAMETER.findall(_STRING_LITERAL.sub("''", sql))), default=0)
    generic = parameter_count > 0
    analyze = analyze and not generic
    raw_plan = connector.explain(sql, analyze=analyze, parameter_count=parameter_count, timeout_ms=timeout_ms)
    root = raw_plan[0]
    plan = _build_node(root["Plan"])
    _mark_costliest(plan, analyzed=analyze)
    return QueryAnalysis(
        sql=sql,
        analyzed=analyze,
        generic_plan=generic,
        total_cost=plan.total_cost,
        planning_ms=root.get("Planning Time"),
        execution_ms=root.get("Execution Time"),
        plan=plan,
        suggestions=_index_suggestions(connector, plan, large_table_rows),
        raw_plan=raw_plan,
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


_CONDITION_KEYS = ("Index Cond", "Recheck Cond", "Filter", "Join Filter", "Hash Cond", "Merge Cond", "One-Time Filter")


def _build_node(raw: dict[str, Any]) -> PlanNode:
    details = [raw[key] for key in ("Operation", "Join Type", "Strategy") if raw.get(key)]
    if raw.get("Sort Key"):
        details.append("by " + ", ".join(raw["Sort Key"]))
    node = PlanNode(
        node_type=raw["Node Type"],
        relation=raw.get("Relation Name"),
        alias=raw.get("Alias"),
        index_name=raw.get("Index Name"),
        detail=" ".join(details),
        conditions={key: raw[key] for key in _CONDITION_KEYS if raw.get(key)},
        startup_cost=raw["Startup Cost"],
        total_cost=raw["Total Cost"],
        plan_rows=raw["Plan Rows"],
        actual_rows=raw.get("Actual Rows"),
        loops=raw.get("Actual Loops"),
        rows_removed_by_filter=raw.get("Rows Removed by Filter"),
        shared_hit_blocks=raw.get("Shared Hit Blocks"),
        shared_read_blocks=raw.get("Shared Read Blocks"),
        children=[_build_node(child) for child in raw.get("Plans", [])],
    )
    node.self_cost = max(node.total_cost - sum(child.total_cost for child in node.children), 0.0)
    if raw.get("Actual Total Time") is not None:
        node.actual_ms = raw["Actual Total Time"] * (node.loops or 1)
        node.self_ms = max(node.actual_ms - sum(child.actual_ms or 0.0 for child in node.children), 0.0)
    return node


def _mark_costliest(plan: PlanNode, *, analyzed: bool, share_threshold: float = 0.25) -> None:
    """Marks the node with the largest exclusive cost (time with ANALYZE) and any other above 25%."""
    nodes = list(plan.walk())
    measure = [(node.self_ms or 0.0) if analyzed else node.self_cost for node in nodes]
    total = sum(measure)
    if total <= 0:
        return
    top = max(range(len(nodes)), key=measure.__getitem__)
    for index, node in enumerate(nodes):
        node.share = measure[index] / total
        node.costly = index == top or node.share >= share_threshold


def _index_suggestions(connector: Connector, plan: PlanNode, large_table_rows: int) -> list[IndexSuggestion]:
    suggestions: dict[tuple[str, tuple[str, ...]], IndexSuggestion] = {}
    for node in plan.walk():
        if node.node_type != "Seq Scan" or not node.relation or "Filter" not in node.conditions:
            continue
        table = connector.table_facts(node.relation)
        if table is None or table.rows < large_table_rows:
            continue
        filter_columns = _filter_columns(node.conditions["Filter"], set(table.columns))
        unindexed = [column for column in filter_columns if column not in table.leading_columns]
        if not unindexed:
            continue  # an index leads on a filter column: the planner chose the scan on selectivity
        columns = unindexed[:MAX_INDEX_COLUMNS]
        suggestions.setdefault((node.relation, tuple(columns)), _suggestion(connector.connection, node, table, columns))
    return list(suggestions.values())


def _filter_columns(filter_text: str, table_columns: set[str]) -> list[str]:
    """Columns of the table named in a plan's Filter, equality columns first (they lead an index best),
    otherwise in order of appearance; string literals and casts are ignored."""
    text = _CAST.sub(" ", _STRING_LITERAL.sub("''", filter_text))
    found: list[str] = []
    for quoted, bare in _IDENTIFIER.findall(text):
        name = quoted.replace('""', '"') if quoted else bare
        if name in table_columns and name not in found:
            found.append(name)

    def compared_for_equality(column: str) -> bool:
        return re.search(rf'(?:\b{re.escape(column)}\b|"{re.escape(column)}")\)*\s*=[^>]', text) is not None

    return sorted(found, key=lambda column: not compared_for_equality(column))


def _suggestion(connection, node: PlanNode, table: TableFacts, columns: list[str]) -> IndexSuggestion:
    quote = connection.ops.quote_name
    model, field_names = _model_fields(node.relation, columns)
    name = _index_name(node.relation, columns, model)
    removed = f"; {node.rows_removed_by_filter:,} rows removed by the filter" if node.rows_removed_by_filter else ""
    return IndexSuggestion(
        table=node.relation,
        columns=columns,
        estimated_table_rows=table.rows,
        reason=(
            f"Seq Scan on {node.relation} (~{table.rows:,} rows) filters on "
            f"{', '.join(columns)}, which no index leads{removed}."
        ),
        create_index_sql=(
            f"CREATE INDEX CONCURRENTLY {quote(name)} ON {quote(node.relation)} "
            f"({', '.join(quote(column) for column in columns)});"
        ),
        django_index=f"models.Index(fields={json.dumps(field_names)}, name={json.dumps(name)})",
        model=model,
    )


def _index_name(table: str, columns: list[str], model: str | None) -> str:
    """A name Django accepts for models.Index (at most 30 characters), stable for the same input."""
    app_prefix = f"{model.split('.')[0].lower()}_" if model else ""
    short_table = table[len(app_prefix) :] if app_prefix and table.startswith(app_prefix) else table
    base = f"{short_table}_{'_'.join(columns)}"
    if len(base) + 4 <= 30:
        return f"{base}_idx"
    digest = hashlib.sha1(base.encode(), usedforsecurity=False).hexdigest()[:6]
    return f"{base[:19].rstrip('_')}_{digest}_idx"


def _model_fields(table: str, columns: list[str]) -> tuple[str | None, list[str]]:
    """The Django model of a table and its field names for the columns (column names when unknown)."""
    for model in apps.get_models(include_auto_created=True):
        if model._meta.db_table != table:
            continue
        by_column = {f.column: f.name for f in model._meta.concrete_fields}
        return model._meta.label, [by_column.get(column, column) for column in columns]
    return None, list(columns)


def analysis_render(analysis: QueryAnalysis) -> list[str]:
    """The plan as an indented tree; `<== costliest` marks where the cost (or time) goes."""
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
        label = node.node_type
        if node.index_name:
            label += f" using {node.index_name}"
        if node.relation:
            label += f" on {node.relation}" + (f" {node.alias}" if node.alias and node.alias != node.relation else "")
        if node.detail:
            label += f" [{node.detail}]"
        label += f"  (cost={node.startup_cost:.2f}..{node.total_cost:.2f} rows={node.plan_rows:,})"
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
        for child in node.children:
            render(child, depth + 1)

    render(analysis.plan, 0)
    if analysis.suggestions:
        lines.append("Index advice:")
        for suggestion in analysis.suggestions:
            lines.append(f"  - {suggestion.reason}")
            lines.append(f"    SQL:    {suggestion.create_index_sql}")
            target = f"  # in {suggestion.model}.Meta.indexes" if suggestion.model else "  # table has no Django model"
            lines.append(f"    Django: {suggestion.django_index}{target}")
    else:
        lines.append("Index advice: none (no sequential scan of a large table on an unindexed filter column).")
    return lines
