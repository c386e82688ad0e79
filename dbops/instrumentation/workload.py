"""Index advice over a workload: the top captured statements (pg_stat_statements and the profiler's store)
analyzed at once. Every index advised for one statement is costed by the planner against every other
statement on its table, so an index that serves several statements is found; then indexes are chosen
greedily by total estimated benefit (cost saved per call x calls, over the statements not yet served),
so one index serving several statements wins over one index per statement."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS

from dbops.engines import get_connector
from dbops.exceptions import AnalyzerError, FeatureUnavailable
from dbops.instrumentation.analyzer import LARGE_TABLE_ROWS, STATEMENT_TIMEOUT, statement_parse
from dbops.instrumentation.index_advice import MIN_COST_FACTOR, IndexSuggestion, candidate_cost, reads_most_of_the_table
from dbops.instrumentation.slow_queries import SlowAnalysis, slow_queries_analyze

WORKLOAD_STATEMENTS = 20


@dataclass
class ServedStatement:
    number: int  # position in the workload, from 1
    cost_before: float
    cost_after: float
    calls: int

    @property
    def benefit(self) -> float:
        return (self.cost_before - self.cost_after) * self.calls


@dataclass
class WorkloadIndex:
    suggestion: IndexSuggestion  # as first advised (its SQL and Django line)
    served: list[ServedStatement] = field(default_factory=list)  # statements the planner proved it helps
    chosen: bool = False
    verdict: str = ""

    @property
    def total_benefit(self) -> float:
        return sum(statement.benefit for statement in self.served)


@dataclass
class WorkloadAdvice:
    statements: list[SlowAnalysis] = field(default_factory=list)
    indexes: list[WorkloadIndex] = field(default_factory=list)  # chosen first, by total benefit
    sources_unavailable: dict[str, str] = field(default_factory=dict)
    total: int = 0  # statements captured; `statements` holds the slowest `limit`
    hypothetical_unavailable: str = ""

    @property
    def chosen(self) -> list[WorkloadIndex]:
        return [index for index in self.indexes if index.chosen]


def workload_advise(
    *,
    limit: int = WORKLOAD_STATEMENTS,
    using: str = DEFAULT_DB_ALIAS,
    large_table_rows: int = LARGE_TABLE_ROWS,
    min_factor: float = MIN_COST_FACTOR,
    timeout: float = STATEMENT_TIMEOUT,
) -> WorkloadAdvice:
    """Advice for the `limit` slowest captured statements at once, each index with its total benefit."""
    report = slow_queries_analyze(
        limit=limit, using=using, large_table_rows=large_table_rows, min_factor=min_factor, timeout=timeout
    )
    advice = WorkloadAdvice(statements=report.analyses, sources_unavailable=report.sources_unavailable)
    advice.total = report.total
    analysed = [(number, item) for number, item in enumerate(report.analyses, start=1) if item.analysis]
    advice.hypothetical_unavailable = next(
        (item.analysis.hypothetical_unavailable for _, item in analysed if item.analysis.hypothetical_unavailable), ""
    )
    pool: dict[str, WorkloadIndex] = {}
    for _number, item in analysed:
        for suggestion in item.analysis.suggestions:
            pool.setdefault(suggestion.create_index_sql, WorkloadIndex(suggestion))
    connector = get_connector(using)
    for index in pool.values():
        for number, item in analysed:
            served = _served(connector, index.suggestion, number, item, min_factor=min_factor, timeout=timeout)
            if served is not None:
                index.served.append(served)
    advice.indexes = _choose(list(pool.values()))
    return advice


def _served(
    connector, suggestion: IndexSuggestion, number: int, item: SlowAnalysis, *, min_factor: float, timeout: float
) -> ServedStatement | None:
    """The statement's costs with this index, when the planner proves it helps by `min_factor`."""
    analysis = item.analysis
    calls = item.statement.calls or 1
    own = next((s for s in analysis.suggestions if s.create_index_sql == suggestion.create_index_sql), None)
    if own is not None:
        return ServedStatement(number, own.cost_before, own.cost_after, calls)
    if suggestion.table not in {node.relation for node in analysis.plan.walk() if node.node_type == "Seq Scan"}:
        return None
    if analysis.hypothetical_unavailable or suggestion.cost_after is None:
        return None
    statement = statement_parse(analysis.sql)
    try:
        cost = candidate_cost(
            connector,
            suggestion.candidate,
            sql=statement.sql,
            parameter_count=statement.parameter_count,
            timeout_ms=int(timeout * 1000),
        )
    except (AnalyzerError, FeatureUnavailable):
        return None  # the statement was explained once already; a second failure only loses this pairing
    if cost.cost_after is None or analysis.total_cost / cost.cost_after < min_factor:
        return None
    if reads_most_of_the_table(suggestion.candidate, cost, suggestion.estimated_table_rows):
        return None
    return ServedStatement(number, analysis.total_cost, cost.cost_after, calls)


def _gain(index: WorkloadIndex, unserved: set[int]) -> tuple[float, int]:
    """Benefit over the statements still unserved; of two equal, the smaller index."""
    benefit = sum(statement.benefit for statement in index.served if statement.number in unserved)
    return benefit, -(index.suggestion.estimated_size_bytes or 0)


def _choose(indexes: list[WorkloadIndex]) -> list[WorkloadIndex]:
    """Greedy cover: the index of the largest benefit over statements still unserved, until none adds any."""
    unserved = {statement.number for index in indexes for statement in index.served}
    remaining = list(indexes)
    chosen: list[WorkloadIndex] = []
    while remaining:
        best = max(remaining, key=lambda index: _gain(index, unserved))
        if _gain(best, unserved)[0] <= 0:
            break
        best.chosen = True
        numbers = sorted(statement.number for statement in best.served)
        best.verdict = f"serves statement(s) {', '.join(f'#{n}' for n in numbers)}"
        unserved -= set(numbers)
        remaining.remove(best)
        chosen.append(best)
    for index in remaining:
        by = ", ".join(
            c.suggestion.name for c in chosen if {s.number for s in c.served} & {s.number for s in index.served}
        )
        index.verdict = f"not needed: its statements are served by {by}" if by else "not needed"
    return chosen + sorted(remaining, key=lambda index: -index.total_benefit)
