"""retention_apply with the real backup engine: real pg_dump artifacts on disk and on the moto S3
server; only the backups the plan deletes disappear, with their manifests and S3 copies."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import boto3
import pytest
from django.conf import settings
from django.utils import timezone

from dbops.models import BackupRecord, RetentionPolicy
from dbops.services.backups.create import backup_create
from dbops.services.backups.retention import retention_apply

pytestmark = pytest.mark.django_db(transaction=True)


def s3_keys(bucket: str) -> set[str]:
    options = settings.STORAGES["backups_s3"]["OPTIONS"]
    client = boto3.client(
        "s3",
        endpoint_url=options["endpoint_url"],
        aws_access_key_id=options["access_key"],
        aws_secret_access_key=options["secret_key"],
        region_name="us-east-1",
    )
    return {item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])}


def backups_aged(days_ago: list[float]) -> list[BackupRecord]:
    """Real uploaded backups, then dated back as if taken on those days."""
    records = []
    for days in days_ago:
        backup_record = backup_create(compression="zstd", upload_s3=True)
        BackupRecord.objects.filter(pk=backup_record.pk).update(started_at=timezone.now() - dt.timedelta(days=days))
        backup_record.refresh_from_db()
        records.append(backup_record)
    return records


def test_retention_deletes_exactly_the_planned_backups_locally_and_on_s3(backup_dir, s3_bucket):
    fresh, yesterday, older, oldest = backups_aged([0, 1, 2, 40])
    assert all(b.uploaded_to_s3 for b in (fresh, yesterday, older, oldest))
    keys_before = s3_keys(s3_bucket)
    assert len(keys_before) == 8  # four artifacts, four manifests

    policy = RetentionPolicy.objects.create(name="two-days", keep_daily=2, keep_weekly=0, keep_monthly=0)
    outcome = retention_apply(policy=policy)

    assert sorted(outcome.deleted) == sorted([older.pk, oldest.pk]) and outcome.ok
    statuses = dict(BackupRecord.objects.values_list("pk", "status"))
    assert statuses == {fresh.pk: "succeeded", yesterday.pk: "succeeded", older.pk: "deleted", oldest.pk: "deleted"}
    for kept in (fresh, yesterday):
        assert Path(kept.location).is_file()
    for gone in (older, oldest):
        assert not Path(gone.location).exists()
        assert not Path(gone.location + ".manifest.json").exists()
    assert s3_keys(s3_bucket) == {key for key in keys_before if any(b.s3_key in key for b in (fresh, yesterday))}
    policy.refresh_from_db()
    assert policy.last_run_ok is True and sorted(policy.last_run_summary["deleted"]) == sorted(outcome.deleted)

    # A second run finds nothing more to delete.
    assert retention_apply(policy=policy).deleted == []


def test_dry_run_leaves_files_and_s3_alone(backup_dir, s3_bucket):
    backups_aged([0, 3])
    files_before = sorted(p.name for p in backup_dir.rglob("*"))
    keys_before = s3_keys(s3_bucket)
    policy = RetentionPolicy(name="one", keep_daily=1, keep_weekly=0, keep_monthly=0)
    outcome = retention_apply(policy=policy, dry_run=True)
    assert len(outcome.plan.delete) == 1 and outcome.deleted == []
    assert sorted(p.name for p in backup_dir.rglob("*")) == files_before
    assert s3_keys(s3_bucket) == keys_before
    assert BackupRecord.objects.filter(status="deleted").count() == 0
