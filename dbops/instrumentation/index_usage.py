"""Indexes that cost writes and space for nothing, from the server's statistics views and catalog:
never used since the statistics were reset, exact duplicates of another index, and prefixes of another
index (its leading keys serve the same lookups). Unique and primary-key indexes enforce constraints, so
they are never "unused"; one may still make a plain index a duplicate or a prefix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS

from dbops.engines import get_connector
from dbops.engines.base import IndexFacts
from dbops.exceptions import AnalyzerError, FeatureUnavailable


@dataclass
class IndexFinding:
    table: str
    name: str
    problem: str  # unused | duplicate | prefix
    size_bytes: int
    scans: int
    definition: str
    other: str = ""  # the index it duplicates or is a prefix of


@dataclass
class IndexUsageReport:
    findings: list[IndexFinding] = field(default_factory=list)
    total: int = 0  # findings in all; `findings` holds the largest `limit`
    total_bytes: int = 0
    statistics_since: Any = None


def indexes_unused_list(*, using: str = DEFAULT_DB_ALIAS, limit: int | None = 50) -> IndexUsageReport:
    """Unused, duplicate and prefix indexes, largest first (limit None: all); each index once, with
    its most telling problem (a duplicate before a prefix before unused)."""
    connector = get_connector(using)
    try:
        indexes = [index for index in connector.index_catalog() if index.valid]
    except FeatureUnavailable as exc:
        raise AnalyzerError(str(exc)) from exc
    findings: dict[str, IndexFinding] = {}
    for index in indexes:
        if index.unique:
            continue
        other, problem = _covered_by(index, indexes)
        if other is not None:
            findings[index.name] = _finding(index, problem, other.name)
        elif index.scans == 0:
            findings[index.name] = _finding(index, "unused")
    ordered = sorted(findings.values(), key=lambda finding: (-finding.size_bytes, finding.table, finding.name))
    return IndexUsageReport(
        findings=ordered[:limit],
        total=len(ordered),
        total_bytes=sum(finding.size_bytes for finding in ordered),
        statistics_since=connector.statistics_since(),
    )


def _finding(index: IndexFacts, problem: str, other: str = "") -> IndexFinding:
    return IndexFinding(index.table, index.name, problem, index.size_bytes, index.scans, index.definition, other)


def _covered_by(index: IndexFacts, indexes: list[IndexFacts]) -> tuple[IndexFacts | None, str]:
    """Another index of the same table and kind that serves every lookup this one does."""
    prefix_of = None
    for other in indexes:
        if other.name == index.name or other.table != index.table or other.method != index.method:
            continue
        if other.predicate != index.predicate or not set(index.include) <= set(other.keys + other.include):
            continue
        if other.keys == index.keys:
            # Of two identical plain indexes the one named last is the duplicate; a unique one always stays.
            if other.unique or other.name < index.name:
                return other, "duplicate"
        elif index.method == "btree" and other.keys[: len(index.keys)] == index.keys:
            prefix_of = prefix_of or other
    return (prefix_of, "prefix") if prefix_of else (None, "")
