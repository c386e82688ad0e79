"""--verify: the advised indexes really built in a scratch copy of the newest backup, real EXPLAIN ANALYZE
times before and after; the live database and the backups as they were."""

from __future__ import annotations

import pytest
from django.db import connection

from dbops.instrumentation.analyzer import query_analyze
from dbops.instrumentation.index_verify import index_advice_verify
from dbops.models import BackupRecord
from dbops.services.backups.create import backup_create
from tests.commands import command_error, run_command
from tests.dbops.instrumentation.analyzer_data import PLANS_REPEAT_ON_PURPOSE, large_audit_table  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("large_audit_table"),
    PLANS_REPEAT_ON_PURPOSE,
]
JSON_LOOKUP = "SELECT id FROM core_auditlog WHERE changes ->> 'reason' = md5('77')"


def live_indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'core_auditlog'")
        return {row[0] for row in cursor.fetchall()}


def scratch_databases() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [connection.settings_dict["NAME"] + "_verify_%"]
        )
        return [row[0] for row in cursor.fetchall()]


def test_verify_builds_the_index_in_a_scratch_copy_and_measures_real_times(backup_dir):
    backup_record = backup_create(tag="for advice")
    indexes_before = live_indexes()

    output = run_command("analyze_query", JSON_LOOKUP, "--verify")

    assert f"Verified on a scratch copy of backup #{backup_record.pk} with auditlog_changes_reason_idx built" in output
    measured = output.split("(EXPLAIN ANALYZE, real times):")[1]
    assert "before " in measured and " ms, after " in measured and "uses auditlog_changes_reason_idx" in measured
    assert live_indexes() == indexes_before and scratch_databases() == []
    assert BackupRecord.objects.count() == 1


def test_verify_measures_a_speedup_and_the_gin_candidate_is_proven_by_the_build(backup_dir):
    backup_create()
    containment = """SELECT id FROM core_auditlog WHERE changes @> '{"reason": "b6d767d2f8ed5d21a44b0e5886680cb9"}'"""
    analysis = query_analyze(sql=containment)
    [gin] = [s for s in analysis.rejected if s.kind == "containment"]

    verification = index_advice_verify(statements=[containment], suggestions=[gin])

    [statement] = verification.statements
    assert statement.indexes_used == [gin.name]
    assert statement.before_ms > 0 and statement.after_ms > 0  # real times; their ratio is the benchmark's


def test_verify_without_a_backup_is_one_message(backup_dir):
    message = command_error("analyze_query", JSON_LOOKUP, "--verify")
    assert "No successful backup" in message
    assert scratch_databases() == []
