"""The advice loop on the real PostgreSQL: unused and duplicate indexes from the statistics views, advice
over a workload, the accepted indexes written as a Django migration, and the bad input of each."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from dbops.instrumentation.analyzer import query_analyze
from dbops.instrumentation.index_usage import indexes_unused_list
from dbops.instrumentation.workload import workload_advise
from multipult.core.models import AuditLog
from tests.commands import command_error, run_command
from tests.dbops.instrumentation.analyzer_data import AUDIT_ROWS, PLANS_REPEAT_ON_PURPOSE, large_audit_table  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("large_audit_table"), PLANS_REPEAT_ON_PURPOSE]
JSON_LOOKUP = "SELECT id FROM core_auditlog WHERE changes ->> 'reason' = 'abc'"


def test_unused_duplicate_and_prefix_indexes_are_listed_with_sizes():
    with connection.cursor() as cursor:
        cursor.execute("CREATE INDEX audit_ip_a ON core_auditlog (ip_address)")
        cursor.execute("CREATE INDEX audit_ip_b ON core_auditlog (ip_address)")
        cursor.execute("CREATE INDEX audit_action ON core_auditlog (action)")
        cursor.execute("CREATE INDEX audit_action_time ON core_auditlog (action, timestamp)")

    report = indexes_unused_list(limit=None)

    found = {f.name: f for f in report.findings if f.table == "core_auditlog"}
    assert (found["audit_ip_b"].problem, found["audit_ip_b"].other) == ("duplicate", "audit_ip_a")
    assert (found["audit_action"].problem, found["audit_action"].other) == ("prefix", "audit_action_time")
    assert found["audit_ip_a"].problem == "unused" and found["audit_action_time"].problem == "unused"
    assert all(f.size_bytes > 0 for f in found.values())
    assert "core_auditlog_pkey" not in found  # a primary key enforces a constraint: never "unused"
    output = run_command("analyze_query", "--unused", "--limit", "0")
    assert "duplicate of audit_ip_a: audit_ip_b on core_auditlog, " in output
    assert "prefix of audit_action_time: audit_action on core_auditlog, " in output
    assert 'CREATE INDEX audit_action_time ON public.core_auditlog USING btree (action, "timestamp")' in output


@pytest.fixture
def committed_index():
    """An index on core_auditlog (entity_id), committed; dropped after (a flush keeps indexes)."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE INDEX audit_entity ON core_auditlog (entity_id)")
        cursor.execute("ANALYZE core_auditlog")
    yield "audit_entity"
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS audit_entity")


@pytest.mark.django_db(transaction=True)  # the statistics views count only committed work
def test_an_index_the_planner_uses_is_not_unused(committed_index):
    assert committed_index in {f.name for f in indexes_unused_list(limit=None).findings}
    list(AuditLog.objects.filter(entity_id=5).values_list("id"))
    with connection.cursor() as cursor:  # this session's counters reach the views when it is next idle
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT pg_stat_clear_snapshot()")

    found = {f.name: f for f in indexes_unused_list(limit=None).findings}

    assert committed_index not in found


def profiler_store(monkeypatch, *statements: tuple[str, int]) -> None:
    """The profiler's store (issue 5's interface) holding these statements, slowest of all captured."""
    rows = [
        SimpleNamespace(pk=number, sample_sql=sql, count=calls, mean_ms=100_000.0 - number)
        for number, (sql, calls) in enumerate(statements, start=1)
    ]
    store = ModuleType("dbops.instrumentation.profiling")
    store.slow_queries_top = lambda *, limit: rows[:limit] if limit else rows
    monkeypatch.setitem(sys.modules, "dbops.instrumentation.profiling", store)


def test_workload_prefers_one_index_that_serves_several_statements(monkeypatch):
    by_entity = 'SELECT "id" FROM "core_auditlog" WHERE "entity_id" = %s'
    by_entity_and_action = 'SELECT "id" FROM "core_auditlog" WHERE "entity_id" = %s AND "action" = %s'
    no_index_helps = "SELECT id FROM core_auditlog WHERE action = ?"  # 'update' or 'create': most rows
    profiler_store(monkeypatch, (by_entity, 40), (by_entity_and_action, 10), (no_index_helps, 5))

    advice = workload_advise(limit=3)

    [chosen] = advice.chosen
    assert {served.number for served in chosen.served} == {1, 2}
    assert chosen.total_benefit == pytest.approx(sum(s.benefit for s in chosen.served))
    assert all(served.cost_before / served.cost_after >= 2 for served in chosen.served)
    assert [index for index in advice.indexes if not index.chosen and "served by" not in index.verdict] == []
    output = run_command("analyze_query", "--workload", "--limit", "3")
    assert f"ADVISED {chosen.suggestion.name}: total estimated benefit " in output
    assert "serves statement(s) #1, #2" in output
    assert output.count("\nADVISED ") + output.startswith("ADVISED ") == 1


@pytest.fixture
def migrations_written():
    """Removes the migrations a test writes into multipult/core/migrations."""
    from pathlib import Path

    import multipult.core.migrations as package

    folder = Path(package.__file__).parent
    before = set(folder.glob("*.py"))
    yield folder
    for path in set(folder.glob("*.py")) - before:
        path.unlink()


def test_write_migration_adds_the_accepted_index_concurrently_and_prints_meta_lines(migrations_written):
    latest = MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes("core")
    output = run_command("analyze_query", JSON_LOOKUP, "--write-migration", "core")

    [written] = list(migrations_written.glob("*_dbops_advised_indexes.py"))
    assert f"Wrote {written}" in output
    assert "# core.AuditLog" in output
    assert '  models.Index(KT("changes__reason"), name="auditlog_changes_reason_idx"),' in output
    loader = MigrationLoader(None, ignore_no_migrations=True)
    migration = loader.disk_migrations[("core", written.stem)]
    assert migration.atomic is False and migration.dependencies == latest
    [operation] = migration.operations
    assert type(operation).__name__ == "AddIndexConcurrently" and operation.model_name == "auditlog"
    # Given the migration's index built (not concurrently: the test runs in a transaction), the planner uses it.
    with connection.schema_editor() as editor:
        editor.add_index(AuditLog, operation.index)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE core_auditlog")
    analysis = query_analyze(sql=JSON_LOOKUP)
    assert analysis.uses_index("auditlog_changes_reason_idx") and analysis.suggestions == []


def test_write_migration_refuses_an_app_without_the_tables(migrations_written):
    message = command_error("analyze_query", JSON_LOOKUP, "--write-migration", "dbops")
    assert "No accepted index is on a model of dbops; no migration written." in message
    message = command_error("analyze_query", JSON_LOOKUP, "--write-migration", "nosuchapp")
    assert "No installed app 'nosuchapp'" in message
    assert list(migrations_written.glob("*_dbops_advised_indexes.py")) == []


def test_a_table_that_does_not_exist_is_one_message():
    message = command_error("analyze_query", "SELECT id FROM core_nosuchtable WHERE id = 1")
    assert 'could not explain the statement: relation "core_nosuchtable" does not exist' in message


def test_verifying_a_write_statement_needs_analyze():
    message = command_error("analyze_query", "DELETE FROM core_auditlog WHERE changes ->> 'reason' = 'x'", "--verify")
    assert "--analyze: Verifying runs the statement (in a scratch database, rolled back), and it is a write" in message
    assert AuditLog.objects.count() == AUDIT_ROWS
