"""The real thing: a throwaway cluster archives WAL through `archive_wal`, a base backup is taken,
rows are written before and after a noted moment, and `pitr restore` to that moment, started on
another port, holds exactly the rows from before it."""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings

from dbops.exceptions import PitrError
from dbops.models import BackupRecord, PitrBaseBackup
from dbops.services.pitr.recovery import pitr_archive_command, pitr_base_backup_create, pitr_wal_needed
from dbops.services.pitr.status import pitr_status
from dbops.services.pitr.wal_archive import pitr_storage
from tests.commands import run_command
from tests.dbops.services.pitr.cluster import (  # noqa: F401  (pitr_clusters: fixture)
    database_alias,
    pitr_clusters,
    switch_wal_and_wait,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_restore_to_a_noted_time_has_exactly_the_rows_from_before(pitr_clusters):  # noqa: F811
    # Given a cluster archiving every WAL file through our archive_wal command
    source = pitr_clusters.new("source")
    source.initdb(
        wal_level="replica",
        archive_mode="on",
        archive_command="'" + pitr_archive_command(python=pitr_clusters.python).replace("'", "''") + "'",
    )
    source.start()
    source.query("CREATE TABLE item (id int PRIMARY KEY, batch text NOT NULL)")
    source.query("INSERT INTO item SELECT i, 'before backup' FROM generate_series(1, 50) i")
    switch_wal_and_wait(source)

    with database_alias("pitr_source", source.port) as alias:
        assert "[FAIL]" not in run_command("pitr", "setup", "--database", alias, "--python", pitr_clusters.python)
        progress_calls = []
        record = pitr_base_backup_create(using=alias, progress=lambda *call: progress_calls.append(call))
    assert record == BackupRecord.objects.get(kind=BackupRecord.Kind.BASE)
    assert progress_calls and progress_calls[-1][1] == progress_calls[-1][2]  # pg_basebackup -P, to 100%
    assert record.status == BackupRecord.Status.SUCCEEDED and record.format == BackupRecord.Format.TAR
    assert record.pitr.storage == settings.PITR_STORAGE and record.uploaded_to_s3 == (settings.PITR_STORAGE == "s3")
    _kind, backend = pitr_storage()
    with backend.open(record.storage_name + ".manifest.json", "rb") as handle:  # the catalog can be rebuilt
        manifest = json.load(handle)
    assert manifest["kind"] == "base" and manifest["sha256"] == record.sha256
    assert manifest["pitr"]["start_wal"] == record.pitr.start_wal

    # When rows are written before the noted time, then changed after it
    source.query("INSERT INTO item SELECT i, 'after backup' FROM generate_series(51, 100) i")
    time.sleep(0.2)
    target_time = source.query("SELECT clock_timestamp()")[0][0]
    time.sleep(0.2)
    source.query("INSERT INTO item SELECT i, 'after target' FROM generate_series(101, 150) i")
    source.query("DELETE FROM item WHERE id <= 10")
    source.query("UPDATE item SET batch = 'changed after target' WHERE id BETWEEN 51 AND 60")
    switch_wal_and_wait(source)

    # And the data directory is rebuilt at that time and started on another port
    restored = pitr_clusters.adopt(pitr_clusters.root / "restored")
    out = run_command(
        "pitr", "restore", "--target-time", target_time.isoformat(), "--target-dir", str(restored.data_dir),
        "--port", str(restored.port), "--owner", "postgres", "--python", pitr_clusters.python,
    )  # fmt: skip
    assert f"from base backup #{record.pk}" in out
    restored.start()
    restored.wait_until("SELECT pg_is_in_recovery()", False)

    # Then it holds exactly the rows from before the noted time, and is open for writes
    rows = restored.query("SELECT id, batch FROM item ORDER BY id")
    assert rows == [(i, "before backup") for i in range(1, 51)] + [(i, "after backup") for i in range(51, 101)]
    restored.query("INSERT INTO item VALUES (1000, 'written after restore')")
    log = restored.log_text()
    assert "restored log file" in log  # WAL came from our archive through restore_wal
    assert "recovery stopping before commit" in log
    # The source is untouched
    assert source.query("SELECT count(*) FROM item")[0][0] == 140

    retention = pitr_wal_needed(kept_base_backups=[record])
    [cluster_id] = retention.needed
    assert record.pitr.start_wal in retention.needed[cluster_id]
    assert all(name[8:24] < record.pitr.start_wal[8:] for name in retention.removable[cluster_id])
    assert pitr_wal_needed(kept_base_backups=[]).needed[cluster_id] == []


def test_failed_base_backup_is_marked_failed_and_leaves_no_files(pitr_clusters):  # noqa: F811
    # Given a cluster set up for PITR whose pg_hba refuses replication connections (pg_basebackup's)
    source = pitr_clusters.new("source")
    source.initdb(
        wal_level="replica",
        archive_mode="on",
        archive_command="'" + pitr_archive_command(python=pitr_clusters.python).replace("'", "''") + "'",
    )
    hba = source.data_dir / "pg_hba.conf"
    hba.write_text("host replication all 127.0.0.1/32 reject\n" + hba.read_text())
    source.start()

    with database_alias("pitr_source", source.port) as alias, pytest.raises(PitrError, match="pg_basebackup failed"):
        pitr_base_backup_create(using=alias)

    record = BackupRecord.objects.get(kind=BackupRecord.Kind.BASE)
    assert record.status == BackupRecord.Status.FAILED and "pg_hba.conf rejects" in record.error
    assert record.finished_at is not None and not PitrBaseBackup.objects.exists()
    assert all(status.base_backups == [] for status in pitr_status())
    if settings.PITR_STORAGE == "local":  # nothing stored under the base backup folders
        assert not list(pitr_clusters.archive_dir.glob("pitr/*/base/*"))
