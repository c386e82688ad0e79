"""The one manifest format: the same field list locally and on S3, for managed and PITR base backups,
read back into the same record values; a place without the artifact gets no manifest."""

from __future__ import annotations

import pytest
from django.utils import timezone

from dbops.artifacts.manifest import (
    MANIFEST_FIELDS,
    manifest_of,
    manifest_pitr_facts,
    manifest_read,
    manifest_save,
    manifest_values,
)
from dbops.artifacts.storage import local_storage, s3_storage
from dbops.models import BackupRecord, PitrBaseBackup
from dbops.services.backups.create import backup_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_local_and_s3_manifests_are_one_format_and_read_back_into_the_record(backup_dir, s3_bucket, some_data):
    backup_record = backup_create(upload_s3=True, tag="both places")
    name = backup_record.storage_name + ".manifest.json"
    local = manifest_read(local_storage(), name)
    remote = manifest_read(s3_storage(), name)
    assert set(local) == {"manifest_version", "id", *MANIFEST_FIELDS}
    assert local == remote  # one writer, one field list, both places up to date after the upload
    assert local["uploaded_to_s3"] is True and local["s3_key"] == backup_record.s3_key
    values = manifest_values(local)
    assert {field: getattr(backup_record, field) for field in MANIFEST_FIELDS} == values


def test_a_base_backup_manifest_is_the_same_format_plus_its_pitr_facts(db):
    record = BackupRecord.objects.create(
        kind="base", status="succeeded", started_at=timezone.now(), engine="postgresql", database_name="x", format="tar"
    )
    pitr = PitrBaseBackup.objects.create(
        backup=record,
        cluster_id="7",
        timeline=1,
        start_lsn="0/2000028",
        end_lsn="0/2000100",
        start_wal="000000010000000000000002",
        end_wal="000000010000000000000002",
        wal_segment_size=16 << 20,
        storage="local",
    )
    manifest = manifest_of(record, pitr=pitr)
    assert set(manifest) == {"manifest_version", "id", "pitr", *MANIFEST_FIELDS}
    assert manifest_pitr_facts(manifest)["start_wal"] == "000000010000000000000002"
    assert manifest_pitr_facts(manifest_of(record)) == {}


def test_manifest_save_writes_only_where_the_artifact_is(backup_dir, s3_bucket, some_data):
    backup_record = backup_create()  # local only
    backup_record.tag = "changed"
    backup_record.uploaded_to_s3 = True  # claims S3, but nothing was uploaded there
    manifest_save(backup_record)
    assert manifest_read(local_storage(), backup_record.storage_name + ".manifest.json")["tag"] == "changed"
    assert not s3_storage().exists(backup_record.storage_name + ".manifest.json")
