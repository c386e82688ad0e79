"""Copy targets (DBOPS["COPY_TARGETS"], BACKUP_COPY_TARGETS in MultiPULT): every managed backup is copied
to another folder and another bucket on the real moto S3 server, each copy read back and proven by its
SHA-256; a copy target that cannot be written leaves the backup and the other copy standing, says so
in one line and exits non-zero; deleting the backup removes its copies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dbops.artifacts.manifest import manifest_name
from dbops.models import BackupRecord
from dbops.services.backups.create import backup_create, backup_delete
from tests.commands import command_error
from tests.conftest import fresh_bucket, s3_storage_config

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def copy_targets(settings, tmp_path, s3_endpoint_url):
    """A folder and a second bucket as copy targets; returns (folder, bucket client, bucket name)."""
    folder = tmp_path / "offsite"
    bucket, client = fresh_bucket(s3_endpoint_url, prefix="copies")
    settings.STORAGES = {
        **settings.STORAGES,
        "copy_folder": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": folder}},
        "copy_bucket": s3_storage_config(bucket=bucket, endpoint_url=s3_endpoint_url, location="copies"),
    }
    settings.DBOPS = {**settings.DBOPS, "COPY_TARGETS": ("copy_folder", "copy_bucket")}
    return folder, client, bucket


def test_every_backup_is_copied_and_proven_and_deleted_with_its_copies(backup_dir, copy_targets):
    folder, client, bucket = copy_targets
    backup_record = backup_create()
    assert backup_record.copies == {"copy_folder": "verified", "copy_bucket": "verified"}
    local_copy = folder / backup_record.storage_name
    assert hashlib.sha256(local_copy.read_bytes()).hexdigest() == backup_record.sha256
    assert (folder / manifest_name(backup_record.storage_name)).is_file()
    key = f"copies/{backup_record.storage_name}"
    stored = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == backup_record.sha256
    client.head_object(Bucket=bucket, Key=f"copies/{manifest_name(backup_record.storage_name)}")

    assert backup_delete(backup_record=backup_record, reason="test") == []  # no receiver failed
    assert not local_copy.exists() and client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_an_unwritable_copy_target_fails_in_one_line_and_keeps_the_rest(
    backup_dir, copy_targets, settings, unwritable_dir
):
    _folder, client, bucket = copy_targets
    settings.STORAGES["copy_folder"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": unwritable_dir / "offsite"},
    }
    message = command_error("backup_advanced")
    backup_record = BackupRecord.objects.get()
    assert message.startswith(f"Backup #{backup_record.pk} succeeded, but a copy failed: local storage ")
    assert "\n" not in message
    assert backup_record.status == "succeeded" and Path(backup_record.location).is_file()
    assert backup_record.copies["copy_bucket"] == "verified" and backup_record.copies["copy_folder"] != "verified"
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 2  # artifact and manifest
