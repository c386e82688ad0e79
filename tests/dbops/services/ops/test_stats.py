"""stats_collect and the stats command on the real PostgreSQL, and on SQLite in a child process."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.utils import timezone

from dbops.models import BackupRecord
from dbops.services.ops.stats import stats_collect
from multipult.core.models import AuditLog, DictionaryEntry
from multipult.core.services.seeding import seed_create, seed_plan
from tests.commands import run_command
from tests.dbops.commandline import run_manage


def backup(status: str, size: int | None, uploaded: bool = False) -> BackupRecord:
    now = timezone.now()
    return BackupRecord.objects.create(
        status=status, started_at=now, finished_at=now, engine="postgresql", database_name="x",
        format=BackupRecord.Format.CUSTOM, size_bytes=size, uploaded_to_s3=uploaded,
    )  # fmt: skip


@pytest.mark.django_db
def test_postgresql_stats_cover_size_rows_indexes_cache_and_connections():
    from tests.queries import queries_on_every_database

    seed_create(scale=0.5, seed=1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE core_auditlog")

    with queries_on_every_database() as queries:
        stats = stats_collect()
    assert len(queries) <= 12, "catalog queries only, no per-table work without --exact"
    tables = {table.name: table for table in stats.tables}

    assert stats.engine == "postgresql" and stats.database == connection.settings_dict["NAME"]
    assert stats.size_bytes > 0
    audit = tables["core_auditlog"]
    assert audit.rows_exact is None
    assert audit.rows_estimated == AuditLog.objects.count()  # ANALYZE saw every row of a small table
    assert audit.table_bytes > 0 and audit.index_bytes > 0
    assert audit.total_bytes >= audit.table_bytes + audit.index_bytes
    assert 0 <= stats.cache_hit_ratio <= 1
    assert 1 <= stats.connections <= stats.max_connections

    indexes = {index.name: index for index in stats.indexes}
    assert {"audit_entity_time_idx", "audit_actor_time_idx", "core_auditlog_pkey"} <= set(indexes)
    assert indexes["core_auditlog_pkey"].unique and not indexes["core_auditlog_pkey"].unused
    assert all(isinstance(index.scans, int) for index in stats.indexes)
    assert all(index.unused == (index.scans == 0 and not index.unique) for index in stats.indexes)
    assert set(stats.as_dict()["unused_indexes"]) == {f"{i.table}.{i.name}" for i in stats.indexes if i.unused}


@pytest.mark.django_db
def test_exact_counts_every_table():
    seed_create(scale=0.3, seed=2)
    tables = {table.name: table for table in stats_collect(exact=True).tables}
    assert tables["core_auditlog"].rows_exact == AuditLog.objects.count()
    assert tables["core_dictionaryentry"].rows_exact == DictionaryEntry.objects.count()
    assert all(table.rows_exact is not None for table in tables.values())


@pytest.mark.django_db
def test_backup_totals_from_the_catalog_and_the_local_folder(backup_dir):
    backup("succeeded", 100, uploaded=True)
    backup("succeeded", 250)
    backup("failed", None)
    (backup_dir / "2026").mkdir()
    (backup_dir / "2026" / "a.dump.zst").write_bytes(b"x" * 1000)
    (backup_dir / "b.dump").write_bytes(b"y" * 24)

    totals = stats_collect().backups
    assert totals.records == 3 and totals.by_status == {"failed": 1, "succeeded": 2}
    assert totals.succeeded_bytes == 350 and totals.uploaded_to_s3 == 1 and totals.s3_bytes == 100
    assert totals.last_finished_at is not None
    assert (totals.local_files, totals.local_bytes) == (2, 1024)


@pytest.mark.django_db
def test_stats_command_text_and_json(backup_dir):
    backup("succeeded", 2048)
    text = run_command("stats", "--exact")
    for heading in ("postgresql database", "cache hit ratio", "Tables", "Indexes", "Backups", "core_auditlog"):
        assert heading in text
    assert "2.0 KiB succeeded" in text

    data = json.loads(run_command("stats", "--json"))
    assert data["backups"]["records"] == 1
    assert {"tables", "indexes", "unused_indexes", "cache_hit_ratio", "connections", "size_bytes"} <= set(data)


@pytest.mark.slow
def test_sqlite_stats_report_what_applies(sqlite_env):
    for args in (["migrate", "--no-input", "-v", "0"], ["seed_data", "--scale", "0.2", "--quiet"]):
        result = run_manage(*args, env=sqlite_env)
        assert result.returncode == 0, result.stderr
    result = run_manage("stats", "--json", "--exact", env=sqlite_env)
    assert result.returncode == 0, result.stderr

    data = json.loads(result.stdout)
    tables = {table["name"]: table for table in data["tables"]}
    assert data["engine"] == "sqlite" and data["size_bytes"] > 0
    assert data["cache_hit_ratio"] is None and data["connections"] is None
    assert tables["core_auditlog"]["rows_exact"] == seed_plan(scale=0.2).counts["audit_logs"]
    assert any(index["name"] == "audit_entity_time_idx" for index in data["indexes"])
    assert data["unused_indexes"] == []  # SQLite has no usage statistics: nothing is called unused
