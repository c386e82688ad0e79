"""dashboard_summary against the real database, a real local folder and the loopback S3 server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.config import Config
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils import timezone

from dbops.models import BackupRecord
from dbops.services.ops.dashboard import backup_history, dashboard_summary, storage_usage
from tests.dbops.admin.conftest import make_backup_record

pytestmark = pytest.mark.django_db


def test_local_usage_counts_every_file_in_every_folder(backup_dir):
    storage = storages["backups"]
    storage.save("2026/11/a.dump.zst", ContentFile(b"x" * 1000))
    storage.save("2026/11/a.manifest.json", ContentFile(b"{}"))
    storage.save("b.dump", ContentFile(b"y" * 500))

    usage = storage_usage(alias="backups")

    assert (usage.configured, usage.files, usage.total_bytes, usage.error) == (True, 3, 1502, "")


def test_local_usage_of_a_missing_folder_is_zero(backup_dir):
    backup_dir.rmdir()

    assert storage_usage(alias="backups").total_bytes == 0


def test_s3_usage_lists_the_bucket(s3_bucket):
    storage = storages["backups_s3"]
    storage.save("2026/one.dump", ContentFile(b"z" * 2048))
    storage.save("two.dump", ContentFile(b"z" * 10))

    usage = storage_usage(alias="backups_s3")

    assert (usage.label, usage.files, usage.total_bytes, usage.error) == ("S3", 2, 2058, "")


def test_unreachable_s3_is_reported_not_raised(settings):
    # a closed loopback port: nothing listens on port 9
    settings.STORAGES = {
        **settings.STORAGES,
        "backups_s3": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "nowhere",
                "endpoint_url": "http://127.0.0.1:9",
                "access_key": "testing",
                "secret_key": "testing",
                "client_config": Config(retries={"max_attempts": 1}, connect_timeout=2),
            },
        },
    }

    usage = storage_usage(alias="backups_s3")

    assert usage.configured and usage.files == 0
    assert "Could not connect" in usage.error or "EndpointConnectionError" in usage.error


def test_s3_not_configured(settings):
    settings.STORAGES = {name: value for name, value in settings.STORAGES.items() if name != "backups_s3"}

    assert storage_usage(alias="backups_s3").configured is False


def test_history_keeps_the_window_in_time_order_and_summary_picks_the_newest():
    now = timezone.now()
    make_backup_record(started_at=now - timedelta(days=61), tag="too-old")
    inside = [
        make_backup_record(started_at=now - timedelta(days=30), size_bytes=100, duration_seconds=2.0),
        make_backup_record(started_at=now - timedelta(days=1), size_bytes=300, duration_seconds=3.0),
    ]
    failed = make_backup_record(
        started_at=now - timedelta(hours=2), status=BackupRecord.Status.FAILED, size_bytes=None, duration_seconds=None
    )

    history = backup_history(days=60, now=now)
    summary = dashboard_summary(days=60, now=now)

    assert [point.backup_id for point in history] == [inside[0].pk, inside[1].pk, failed.pk]
    assert [point.size_bytes for point in history] == [100, 300, None]
    assert summary.last_backup == failed
    assert summary.last_succeeded == inside[1]
