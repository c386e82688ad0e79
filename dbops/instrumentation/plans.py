"""A query plan (PostgreSQL's EXPLAIN JSON format) as a tree of PlanNode, each node's exclusive share
of the cost (or time, with ANALYZE) worked out, and parallel work per process and in total."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

CONDITION_KEYS = ("Index Cond", "Recheck Cond", "Filter", "Join Filter", "Hash Cond", "Merge Cond", "One-Time Filter")
GATHER = ("Gather", "Gather Merge")


@dataclass
class WorkerTime:
    worker: str  # "leader" or "worker N"
    actual_ms: float
    actual_rows: int


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
    actual_ms: float | None = None  # inclusive, all loops; wall time of one process under a Gather
    self_ms: float | None = None
    actual_rows: int | None = None  # per loop (per process under a Gather), as EXPLAIN says
    loops: int | None = None
    rows_removed_by_filter: int | None = None
    shared_hit_blocks: int | None = None
    shared_read_blocks: int | None = None
    share: float = 0.0  # this node's exclusive share of the whole plan's cost (or time with ANALYZE)
    costly: bool = False
    sort_keys: list[str] = field(default_factory=list)
    output: list[str] | None = None  # with VERBOSE: what the node returns
    parallel_aware: bool = False
    processes: int = 1  # processes running this node: planned (or launched) workers + the leader
    processes_ms: float | None = None  # time summed over those processes (with ANALYZE)
    workers: list[WorkerTime] = field(default_factory=list)  # with ANALYZE VERBOSE, per process
    children: list[PlanNode] = field(default_factory=list)

    def walk(self) -> Iterator[PlanNode]:
        yield self
        for child in self.children:
            yield from child.walk()

    @property
    def label(self) -> str:
        label = self.node_type if not self.parallel_aware else f"Parallel {self.node_type}"
        if self.index_name:
            label += f" using {self.index_name}"
        if self.relation:
            label += f" on {self.relation}" + (f" {self.alias}" if self.alias and self.alias != self.relation else "")
        if self.detail:
            label += f" [{self.detail}]"
        return label

    @property
    def total_rows_estimate(self) -> int:
        """Estimated rows over every process (EXPLAIN gives a parallel node's rows per process)."""
        return self.plan_rows * self.processes


def plan_build(raw_plan: dict[str, Any], *, analyzed: bool) -> PlanNode:
    plan = _build_node(raw_plan, processes=1)
    _mark_costliest(plan, analyzed=analyzed)
    return plan


def _build_node(raw: dict[str, Any], *, processes: int) -> PlanNode:
    details = [raw[key] for key in ("Operation", "Join Type", "Strategy") if raw.get(key)]
    if raw.get("Sort Key"):
        details.append("by " + ", ".join(raw["Sort Key"]))
    if raw["Node Type"] in GATHER:
        details.append(f"{raw.get('Workers Launched', raw.get('Workers Planned', 0))} workers")
    node = PlanNode(
        node_type=raw["Node Type"],
        relation=raw.get("Relation Name"),
        alias=raw.get("Alias"),
        index_name=raw.get("Index Name"),
        detail=" ".join(details),
        conditions={key: raw[key] for key in CONDITION_KEYS if raw.get(key)},
        startup_cost=raw["Startup Cost"],
        total_cost=raw["Total Cost"],
        plan_rows=raw["Plan Rows"],
        actual_rows=raw.get("Actual Rows"),
        loops=raw.get("Actual Loops"),
        rows_removed_by_filter=raw.get("Rows Removed by Filter"),
        shared_hit_blocks=raw.get("Shared Hit Blocks"),
        shared_read_blocks=raw.get("Shared Read Blocks"),
        sort_keys=list(raw.get("Sort Key") or []),
        output=raw.get("Output"),
        parallel_aware=bool(raw.get("Parallel Aware")),
        processes=processes,
    )
    below = processes
    if node.node_type in GATHER:  # the leader takes part as well (parallel_leader_participation)
        below = 1 + int(raw.get("Workers Launched", raw.get("Workers Planned", 0)) or 0)
    node.children = [_build_node(child, processes=below) for child in raw.get("Plans", [])]
    node.self_cost = max(node.total_cost - sum(child.total_cost for child in node.children), 0.0)
    if raw.get("Actual Total Time") is not None:
        # Actual Total Time is a mean per loop; loops under a Gather count every process once.
        node.processes_ms = raw["Actual Total Time"] * (node.loops or 1)
        node.actual_ms = node.processes_ms / processes
        node.self_ms = max(node.actual_ms - sum(child.actual_ms or 0.0 for child in node.children), 0.0)
        node.workers = _worker_times(raw, node)
    return node


def _worker_times(raw: dict[str, Any], node: PlanNode) -> list[WorkerTime]:
    workers = [
        WorkerTime(
            worker=f"worker {item['Worker Number']}",
            actual_ms=item.get("Actual Total Time", 0.0) * item.get("Actual Loops", 1),
            actual_rows=item.get("Actual Rows", 0) * item.get("Actual Loops", 1),
        )
        for item in raw.get("Workers") or []
        if "Actual Total Time" in item
    ]
    if not workers:
        return []
    leader_ms = max((node.processes_ms or 0.0) - sum(worker.actual_ms for worker in workers), 0.0)
    leader_rows = max((node.actual_rows or 0) * (node.loops or 1) - sum(worker.actual_rows for worker in workers), 0)
    return [WorkerTime("leader", leader_ms, leader_rows), *workers]


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


@dataclass
class PlanRow:
    """One node of a plan as the admin draws it: depth in the tree, its share as a bar, per-process bars."""

    node: PlanNode
    depth: int
    percent: float  # this node's exclusive share of the plan's cost (time with ANALYZE), 0-100
    processes: list[tuple[str, float, float]] = field(default_factory=list)  # (who, ms, % of the node's total)


def plan_rows(plan: PlanNode) -> list[PlanRow]:
    """The plan depth-first; a parallel node with measured workers gets a bar per process and its total."""
    rows: list[PlanRow] = []

    def visit(node: PlanNode, depth: int) -> None:
        row = PlanRow(node=node, depth=depth, percent=round(node.share * 100, 1))
        total = node.processes_ms or 0.0
        if node.workers and total > 0:
            row.processes = [(w.worker, w.actual_ms, round(100 * w.actual_ms / total, 1)) for w in node.workers]
        rows.append(row)
        for child in node.children:
            visit(child, depth + 1)

    visit(plan, 0)
    return rows
