"""query_analyze on a real, ANALYZEd table of tens of thousands of rows (PostgreSQL's own planner)."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace

import pytest
from django.db import connection

from dbops.exceptions import AnalyzerError
from dbops.instrumentation.analyzer import analysis_render, query_analyze
from dbops.instrumentation.slow_queries import slow_queries_analyze
from multipult.core.models import StoredFile
from tests.dbops.instrumentation.analyzer_data import (
    PLANS_REPEAT_ON_PURPOSE,
    READS_PG_STAT_STATEMENTS,
    ROWS,
    capture_sha256_lookup,
    large_files_table,  # noqa: F401  (fixture)
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("large_files_table"),
    PLANS_REPEAT_ON_PURPOSE,
    READS_PG_STAT_STATEMENTS,
]

SHA_QUERY = "SELECT id, name FROM core_storedfile WHERE sha256 = 'f00d'"


def test_seq_scan_on_unindexed_column_gets_create_index_and_models_index():
    analysis = query_analyze(sql=SHA_QUERY)

    assert analysis.plan.node_type == "Seq Scan" and analysis.plan.relation == "core_storedfile"
    assert analysis.plan.costly
    [suggestion] = analysis.suggestions
    assert suggestion.table == "core_storedfile"
    assert suggestion.columns == ["sha256"]
    assert suggestion.estimated_table_rows >= ROWS * 0.9
    assert suggestion.create_index_sql == (
        'CREATE INDEX CONCURRENTLY "storedfile_sha256_idx" ON "core_storedfile" ("sha256");'
    )
    assert suggestion.django_index == 'models.Index(fields=["sha256"], name="storedfile_sha256_idx")'
    assert suggestion.model == "core.StoredFile"


def test_after_creating_the_suggested_index_the_plan_uses_it_and_no_advice():
    [suggestion] = query_analyze(sql=SHA_QUERY).suggestions
    with connection.cursor() as cursor:
        # CONCURRENTLY cannot run inside the test's transaction; the index is the same.
        cursor.execute(suggestion.create_index_sql.replace(" CONCURRENTLY", ""))
        cursor.execute("ANALYZE core_storedfile")

    analysis = query_analyze(sql=SHA_QUERY, analyze=True)

    assert analysis.uses_index("storedfile_sha256_idx")
    assert analysis.suggestions == []
    assert "Seq Scan" not in {node.node_type for node in analysis.plan.walk()}


def test_foreign_key_filter_maps_to_the_django_field_name():
    with connection.cursor() as cursor:  # without Django's automatic FK index the column is unindexed
        cursor.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'core_storedfile'::regclass"
            " AND indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = 'core_storedfile'::regclass"
            " AND attname = 'uploaded_by_id')"
        )
        for (index_name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{index_name}"')
    analysis = query_analyze(sql="SELECT id FROM core_storedfile WHERE uploaded_by_id = 7 AND size > 5")

    [suggestion] = analysis.suggestions
    assert suggestion.columns == ["uploaded_by_id", "size"]
    assert suggestion.django_index.startswith('models.Index(fields=["uploaded_by", "size"], name="')
    name = suggestion.django_index.split('name="')[1].rstrip('")')
    assert len(name) <= 30  # Django's limit for models.Index names


def test_seq_scan_chosen_despite_an_index_gets_no_advice():
    # file_entity_idx leads on entity_type, but every row matches, so the planner scans the table.
    analysis = query_analyze(sql="SELECT id FROM core_storedfile WHERE entity_type = 'concept'")

    assert analysis.plan.node_type == "Seq Scan"
    assert analysis.suggestions == []


def test_small_table_gets_no_advice():
    analysis = query_analyze(sql="SELECT id FROM core_storedfile WHERE sha256 = 'f00d'", large_table_rows=ROWS * 10)
    assert analysis.suggestions == []


def test_analyze_of_a_write_is_rolled_back():
    analysis = query_analyze(sql="DELETE FROM core_storedfile WHERE size <= 1000", analyze=True)

    assert analysis.analyzed and analysis.execution_ms is not None
    assert analysis.plan.node_type == "ModifyTable" and analysis.plan.detail == "Delete"
    assert analysis.plan.children[0].actual_rows == 1000
    assert StoredFile.objects.count() == ROWS


def test_render_is_an_indented_tree_with_the_costliest_node_marked():
    analysis = query_analyze(
        sql="SELECT f.entity_id, count(*) FROM core_storedfile f WHERE f.content_type = 'image/png' "
        "GROUP BY f.entity_id ORDER BY count(*) DESC LIMIT 5",
        analyze=True,
    )
    lines = analysis_render(analysis)

    tree = [line for line in lines if line.lstrip().startswith("->")]
    assert tree[0].startswith("-> Limit")
    assert any(line.startswith("   -> ") for line in tree)  # children are indented under parents
    marked = [line for line in tree if "<== costliest" in line]
    assert marked and any("Seq Scan on core_storedfile" in line for line in marked)
    assert any("Buffers: shared hit=" in line for line in lines)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("", "No SQL statement given"),
        ("   ;  ", "No SQL statement given"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("DROP TABLE core_storedfile", "Only "),
        ("SELEC id FROM core_storedfile", "Only "),
        ("SELECT nope FROM core_storedfile", "could not explain"),
    ],
)
def test_bad_statements_are_refused_and_change_nothing(sql, message):
    with pytest.raises(AnalyzerError, match=message):
        query_analyze(sql=sql, analyze=True)
    assert StoredFile.objects.count() == ROWS


def test_slow_statements_from_pg_stat_statements_are_analyzed():
    capture_sha256_lookup()

    report = slow_queries_analyze(limit=20)

    assert "pg_stat_statements" not in report.sources_unavailable
    ours = [
        item
        for item in report.analyses
        if item.statement.source == "pg_stat_statements" and '"core_storedfile"."sha256" = $1' in item.statement.sql
    ]
    assert ours, [item.statement.sql for item in report.analyses]
    analysis = ours[0].analysis
    assert analysis is not None and analysis.generic_plan
    assert [s.columns for s in analysis.suggestions] == [["sha256"]]


def test_profiler_store_statements_are_analyzed_when_the_store_is_installed(monkeypatch):
    # The profiler's store (issue 5) is not on this branch: an in-memory stand-in with its interface
    # (slow_queries_top(limit=) -> rows with sample_sql, count, mean_ms, pk; literals masked as "?").
    row = SimpleNamespace(
        pk=7,
        sample_sql='SELECT "core_storedfile"."id" FROM "core_storedfile" WHERE "core_storedfile"."sha256" = %s '
        'AND "core_storedfile"."size" > ? LIMIT 21',
        count=12,
        mean_ms=250.0,
    )
    store = ModuleType("dbops.instrumentation.profiling")
    store.slow_queries_top = lambda *, limit: [row][:limit]
    monkeypatch.setitem(sys.modules, "dbops.instrumentation.profiling", store)

    report = slow_queries_analyze(limit=5)

    assert "profiler" not in report.sources_unavailable
    [item] = [item for item in report.analyses if item.statement.source == "profiler"]
    assert item.statement.reference == 7 and item.statement.calls == 12
    assert item.analysis is not None and item.analysis.generic_plan
    assert [s.columns for s in item.analysis.suggestions] == [["sha256", "size"]]


def test_without_the_profiler_store_pg_stat_statements_alone_is_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "dbops.instrumentation.profiling", None)  # import fails like before issue 5 lands
    report = slow_queries_analyze(limit=3)
    assert "profiler" in report.sources_unavailable
    assert "pg_stat_statements" not in report.sources_unavailable
