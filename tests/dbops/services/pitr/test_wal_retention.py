"""Retention of PITR base backups and their archived WAL (pitr_wal_needed decides, we delete)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from dbops.models import BackupRecord, PitrBaseBackup, RetentionPolicy
from dbops.services.pitr.wal_archive import wal_archive, wal_archived_names
from tests.commands import run_command

pytestmark = pytest.mark.django_db
CLUSTER, OTHER_CLUSTER = "7300000000000000001", "7300000000000000002"
WAL = [f"00000001000000000000000{i}" for i in range(1, 8)] + ["00000002.history"]


def base_backup(start_wal: str, *, days_ago: float, cluster_id: str = CLUSTER, status="succeeded") -> BackupRecord:
    started = timezone.now() - timedelta(days=days_ago)
    record = BackupRecord.objects.create(
        kind=BackupRecord.Kind.BASE,
        status=status,
        started_at=started,
        finished_at=started + timedelta(minutes=1),
        engine="postgresql",
        database_name="app",
        format=BackupRecord.Format.TAR,
        compression=BackupRecord.Compression.GZIP,
        storage_name=f"pitr/{cluster_id}/base/{started:%Y%m%d%H%M%S}/base.tar.gz",
    )
    PitrBaseBackup.objects.create(
        backup=record, cluster_id=cluster_id, timeline=1, start_lsn="0/0", end_lsn="0/0",
        start_wal=start_wal, end_wal=start_wal, wal_segment_size=16 * 1024 * 1024, storage="local",
    )  # fmt: skip
    return record


@pytest.fixture
def wal_archive_of_two_clusters(backup_dir, settings, tmp_path):
    settings.PITR_STORAGE = "local"
    for cluster_id in (CLUSTER, OTHER_CLUSTER):
        for name in WAL:
            (tmp_path / name).write_bytes(f"{cluster_id} {name}".encode())
            wal_archive(path=tmp_path / name, name=name, cluster_id=cluster_id)
    return backup_dir


def retention(*args) -> dict:
    return json.loads(run_command("apply_retention", *args, "--json"))


def test_wal_older_than_every_kept_base_backup_is_deleted(wal_archive_of_two_clusters):
    # Given base backups starting at WAL 3 (old) and 6 (new) of one cluster; the other cluster has none
    old, new = base_backup("000000010000000000000003", days_ago=10), base_backup("000000010000000000000006", days_ago=0)
    RetentionPolicy.objects.create(name="base", kind="base", keep_daily=1, keep_weekly=0, keep_monthly=0)

    # Dry run: the list, and nothing removed
    dry = retention("--policy", "base", "--dry-run")
    assert [item["id"] for item in dry["policies"][0]["delete"]] == [old.pk]
    assert dry["wal"]["would_delete"] == {CLUSTER: WAL[:5]}  # what the real run will delete
    assert wal_archived_names(cluster_id=CLUSTER) == sorted(WAL)

    # Applied: the old base backup goes, and with it the WAL only it needed
    applied = retention("--policy", "base")
    assert applied["policies"][0]["deleted"] == [old.pk]
    assert applied["wal"]["deleted"] == {CLUSTER: WAL[:5]}
    assert wal_archived_names(cluster_id=CLUSTER) == sorted(WAL[5:])  # 6, 7 and the history file
    assert not list(wal_archive_of_two_clusters.glob(f"pitr/{CLUSTER}/wal/000000010000000000000005*"))
    # A cluster without any kept base backup keeps its whole archive
    assert wal_archived_names(cluster_id=OTHER_CLUSTER) == sorted(WAL)
    assert BackupRecord.objects.get(pk=new.pk).status == "succeeded"


def test_no_wal_is_pruned_while_a_base_backup_runs(wal_archive_of_two_clusters):
    base_backup("000000010000000000000006", days_ago=0)
    base_backup("000000010000000000000007", days_ago=0, status="running")
    result = retention("--daily", "1")
    assert result["wal"] is None  # an ad-hoc run covers full backups only
    RetentionPolicy.objects.create(name="all-kinds", kind="", keep_daily=1, keep_weekly=0, keep_monthly=0)
    result = retention("--policy", "all-kinds")
    assert result["wal"]["skipped"] == "a base backup is running"
    assert wal_archived_names(cluster_id=CLUSTER) == sorted(WAL)
