"""Index advice that is proven before it is given: every candidate (index_candidates) is costed by the
planner with a hypothetical index (HypoPG, through the engine); it is advised only when the planner
chooses it and the statement's estimated cost drops by at least `min_factor`. Where HypoPG cannot run,
the candidates are given marked unvalidated. Existing indexes that the planner ignores for the
statement are reported with their size, never taken as "already covered"."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django.template.defaultfilters import filesizeformat

from dbops.engines import Connector
from dbops.engines.base import IndexFacts, TableFacts
from dbops.exceptions import FeatureUnavailable
from dbops.instrumentation.index_candidates import (
    IndexCandidate,
    ScanShape,
    candidates_for,
    conditions_parse,
    sort_keys_parse,
)
from dbops.instrumentation.index_django import django_index_line, model_columns
from dbops.instrumentation.plans import GATHER, PlanNode, plan_build

MIN_COST_FACTOR = 2.0
ACCEPTED, REJECTED, UNVALIDATED, UNPROVEN = "accepted", "rejected", "unvalidated", "unproven"
WORTH_SAVING = 0.01  # a bigger index must save at least this share of the statement's estimated cost
# An index read for more of the table than this only looks cheaper (an index-only scan of most rows is
# costed below a sequential scan, yet measured slower): not advised, except to stop a sort early.
MAX_INDEX_READ_SHARE = 0.2


@dataclass
class IgnoredIndex:
    table: str
    name: str
    definition: str
    size_bytes: int
    reason: str


@dataclass
class IndexSuggestion:
    table: str
    columns: list[str]
    kind: str
    status: str  # accepted | rejected | unvalidated (HypoPG unavailable) | unproven (only a real build can tell)
    verdict: str
    estimated_table_rows: int
    reason: str
    name: str
    create_index_sql: str
    django_index: str
    model: str | None  # "app_label.ModelName" whose Meta.indexes takes the django_index line
    cost_before: float
    cost_after: float | None = None
    estimated_size_bytes: int | None = None
    candidate: IndexCandidate | None = None

    @property
    def cost_factor(self) -> float | None:
        return self.cost_before / self.cost_after if self.cost_after else None


@dataclass
class IndexAdvice:
    suggestions: list[IndexSuggestion] = field(default_factory=list)  # advised: accepted or unvalidated
    rejected: list[IndexSuggestion] = field(default_factory=list)  # checked and not advised, or unproven
    ignored_indexes: list[IgnoredIndex] = field(default_factory=list)
    hypothetical_unavailable: str = ""  # why the candidates could not be checked ("" when they were)
    min_factor: float = MIN_COST_FACTOR


@dataclass
class Scan:
    node: PlanNode
    facts: TableFacts
    shape: ScanShape


def scans_find(connector: Connector, plan: PlanNode, large_table_rows: int) -> list[Scan]:
    """Sequential scans of large tables that filter or feed a Sort: where an index could help."""
    sorted_scans: dict[int, list[str]] = {}
    for node in plan.walk():
        if node.node_type in ("Sort", "Incremental Sort") and node.children:
            child = node.children[0]
            while child.node_type in GATHER and child.children:
                child = child.children[0]
            sorted_scans[id(child)] = node.sort_keys
    scans = []
    for node in plan.walk():
        if node.node_type != "Seq Scan" or not node.relation:
            continue
        facts = connector.table_facts(node.relation)
        if facts is None or facts.rows < large_table_rows:
            continue
        shape = ScanShape(
            table=node.relation,
            conditions=conditions_parse(node.conditions.get("Filter", ""), facts.columns),
            sort_keys=sort_keys_parse(sorted_scans.get(id(node), []), facts.columns),
            output=node.output,
            few_values=facts.few_values,
        )
        if shape.conditions or shape.sort_keys:
            scans.append(Scan(node, facts, shape))
    return scans


def index_advise(
    *,
    connector: Connector,
    sql: str,
    plan: PlanNode,
    parameter_count: int,
    large_table_rows: int,
    min_factor: float = MIN_COST_FACTOR,
    timeout_ms: int,
) -> IndexAdvice:
    advice = IndexAdvice(min_factor=min_factor)
    scans = scans_find(connector, plan, large_table_rows)
    if not scans:
        return advice
    advice.ignored_indexes = _ignored_indexes(connector, plan, scans)
    try:
        connector.hypothetical_indexes_ensure()
    except FeatureUnavailable as exc:
        advice.hypothetical_unavailable = str(exc)
    seen: set[str] = set()
    for scan in scans:
        judged = []
        for candidate in candidates_for(scan.shape, scan.facts.columns):
            suggestion = suggestion_build(connector, candidate, scan, cost_before=plan.total_cost)
            if suggestion.create_index_sql in seen:
                continue
            seen.add(suggestion.create_index_sql)
            judged.append(suggestion)
            if advice.hypothetical_unavailable:
                _mark_unvalidated(suggestion, advice.hypothetical_unavailable)
            elif not candidate.simulable:
                suggestion.status = UNPROVEN
                suggestion.verdict = "HypoPG cannot simulate a GIN index: only a real build (verify) can prove it."
            else:
                _judge(connector, suggestion, sql=sql, parameter_count=parameter_count, timeout_ms=timeout_ms)
                _check_factor(suggestion, min_factor)
        _choose_per_scan(judged, min_factor)
        for suggestion in judged:
            (advice.suggestions if suggestion.status in (ACCEPTED, UNVALIDATED) else advice.rejected).append(suggestion)
    return advice


def _mark_unvalidated(suggestion: IndexSuggestion, why: str) -> None:
    plain = suggestion.candidate.kind in ("equality", "range", "expression", "sort")
    suggestion.status = UNVALIDATED if plain else REJECTED
    suggestion.verdict = (
        "UNVALIDATED: the planner was not asked (hypothetical indexes unavailable)."
        if plain
        else ("not tried without hypothetical indexes")
    )


def suggestion_build(connector: Connector, candidate: IndexCandidate, scan: Scan, *, cost_before: float):
    quote = connector.connection.ops.quote_name
    model, by_column = model_columns(candidate.table)
    name = index_name(candidate, model)
    removed = scan.node.rows_removed_by_filter
    removed_text = f"; {removed:,} rows removed by the filter" if removed else ""
    what = {(True, False): "filters", (False, True): "is sorted", (True, True): "filters and is sorted"}[
        (bool(scan.shape.conditions), bool(scan.shape.sort_keys))
    ]
    rows = scan.facts.rows
    return IndexSuggestion(
        table=candidate.table,
        columns=candidate.labels,
        kind=candidate.kind,
        status=REJECTED,
        verdict="",
        estimated_table_rows=scan.facts.rows,
        reason=f"Seq Scan on {candidate.table} (~{rows:,} rows) {what} on {', '.join(candidate.labels)}{removed_text}.",
        name=name,
        create_index_sql=candidate.create_sql(quote, name=name, concurrently=True) + ";",
        django_index=django_index_line(candidate, name=name, by_column=by_column),
        model=model,
        cost_before=cost_before,
        candidate=candidate,
    )


@dataclass
class CandidateCost:
    """What the planner says of a statement with one hypothetical index: cost (None: index not chosen)."""

    cost_after: float | None
    size_bytes: int
    index_rows: int = 0  # rows the planner expects to read through the index (over every process)


def candidate_cost(
    connector: Connector, candidate: IndexCandidate, *, sql: str, parameter_count: int, timeout_ms: int
) -> CandidateCost:
    """Asks the planner for the statement's plan with the candidate as a hypothetical index."""
    quote = connector.connection.ops.quote_name
    hypothetical = connector.explain_hypothetical(
        sql, index_sql=candidate.create_sql(quote, name=None), parameter_count=parameter_count, timeout_ms=timeout_ms
    )
    plan = plan_build(hypothetical.raw_plan[0]["Plan"], analyzed=False)
    using = [node for node in plan.walk() if node.index_name == hypothetical.index_name]
    return CandidateCost(
        cost_after=plan.total_cost if using else None,
        size_bytes=hypothetical.size_bytes,
        index_rows=sum(node.total_rows_estimate for node in using),
    )


def reads_most_of_the_table(candidate: IndexCandidate, cost: CandidateCost, table_rows: int) -> bool:
    return candidate.kind != "sort" and cost.index_rows > MAX_INDEX_READ_SHARE * max(table_rows, 1)


def _judge(connector: Connector, suggestion: IndexSuggestion, *, sql: str, parameter_count: int, timeout_ms: int):
    cost = candidate_cost(
        connector, suggestion.candidate, sql=sql, parameter_count=parameter_count, timeout_ms=timeout_ms
    )
    suggestion.cost_after, suggestion.estimated_size_bytes = cost.cost_after, cost.size_bytes
    if cost.cost_after is None:
        suggestion.verdict = "the planner does not choose it for this statement"
    elif reads_most_of_the_table(suggestion.candidate, cost, suggestion.estimated_table_rows):
        share = cost.index_rows / max(suggestion.estimated_table_rows, 1)
        suggestion.verdict = (
            f"chosen, but it would be read for {share:.0%} of the table (more than {MAX_INDEX_READ_SHARE:.0%}): "
            "cheaper only on paper"
        )


def _check_factor(suggestion: IndexSuggestion, min_factor: float) -> None:
    factor = suggestion.cost_factor
    if factor is None or suggestion.verdict:  # not chosen, or judged out already
        return
    if factor >= min_factor:
        suggestion.status, suggestion.verdict = ACCEPTED, f"the planner chooses it; estimated cost {factor:,.1f}x lower"
    else:
        suggestion.verdict = f"chosen, but the estimated cost drops only {factor:,.2f}x (needs {min_factor:g}x)"


def _choose_per_scan(judged: list[IndexSuggestion], min_factor: float) -> None:
    """One index per scan: the smallest accepted one, unless a bigger one pays for itself (its plan is
    `min_factor` cheaper still, and that saves at least 1% of the statement's cost)."""
    accepted = sorted((s for s in judged if s.status == ACCEPTED), key=lambda s: s.estimated_size_bytes or 0)
    if len(accepted) < 2:
        return
    chosen = accepted[0]
    for suggestion in accepted[1:]:
        saving = chosen.cost_after - suggestion.cost_after
        if chosen.cost_after / suggestion.cost_after >= min_factor and saving >= WORTH_SAVING * chosen.cost_before:
            chosen = suggestion
    for suggestion in accepted:
        if suggestion is not chosen:
            suggestion.status = REJECTED
            suggestion.verdict = (
                f"{chosen.name} serves this scan better for its size (cost {chosen.cost_after:,.2f} with "
                f"{filesizeformat(chosen.estimated_size_bytes)}, this one {suggestion.cost_after:,.2f} with "
                f"{filesizeformat(suggestion.estimated_size_bytes)})"
            )


def _ignored_indexes(connector: Connector, plan: PlanNode, scans: list[Scan]) -> list[IgnoredIndex]:
    used = {node.index_name for node in plan.walk() if node.index_name}
    tables = sorted({scan.shape.table for scan in scans})
    ignored = []
    for index in connector.index_catalog(tables=tables):
        if not index.valid or index.name in used:
            continue
        for scan in scans:
            if index.table != scan.shape.table:
                continue
            wanted = {c.column for c in scan.shape.conditions} | {k.column for k in scan.shape.sort_keys}
            column = _leading_column(index, scan.facts.columns)
            if column in wanted:
                ignored.append(
                    IgnoredIndex(
                        index.table,
                        index.name,
                        index.definition,
                        index.size_bytes,
                        f"leads on {index.keys[0]}, which this scan uses; the planner scans the table instead",
                    )
                )
                break
    return ignored


def _leading_column(index: IndexFacts, columns: frozenset[str]) -> str | None:
    """The table column an index's first key is on (for an expression, the first column it names)."""
    key = index.keys[0].removesuffix(" DESC").strip('"')
    if key in columns:
        return key
    words = [word.strip('"()') for word in key.replace("->", " ").split()]
    return next((word for word in words if word in columns), None)


def index_name(candidate: IndexCandidate, model: str | None) -> str:
    """A name Django accepts for models.Index (at most 30 characters), stable for the same candidate."""
    app_prefix = f"{model.split('.')[0].lower()}_" if model else ""
    table = candidate.table
    short_table = table[len(app_prefix) :] if app_prefix and table.startswith(app_prefix) else table
    words = [key.column if key.json_key is None else f"{key.column}_{key.json_key}" for key in candidate.keys]
    suffix = {"partial": "_part", "covering": "_cov", "containment": "_gin"}.get(candidate.kind, "")
    if candidate.kind == "covering" and candidate.predicate:
        suffix = "_pcov"
    base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in f"{short_table}_{'_'.join(words)}{suffix}")
    if len(base) + 4 <= 30:
        return f"{base}_idx"
    digest = hashlib.sha1(repr(candidate).encode(), usedforsecurity=False).hexdigest()[:6]
    return f"{base[:19].rstrip('_')}_{digest}_idx"
