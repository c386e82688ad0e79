"""The key ring (BACKUP_ENCRYPTION_KEYS, newest first): rotation keeps old backups restorable, a key
taken out of the ring makes its backups "key unavailable" (not failed: verification says so, health
does not count it, restore refuses in one line), and no key ever reaches a manifest or the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbops.artifacts.keyring import key_id_of
from dbops.models import BackupRecord
from dbops.services.backups.create import backup_create
from dbops.services.backups.verify import backup_verify
from dbops.services.ops.health import health_check
from multipult.core.models import Concept
from tests.commands import command_error, run_command
from tests.dbops.services.backups.conftest import tree

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drop_pre_restore_databases")]

OLD_KEY = "the old key, from before the rotation"
NEW_KEY = "the new key, encrypting from now on"


def restore_concepts(backup_record: BackupRecord) -> None:
    Concept.objects.filter(code="C7").delete()
    run_command("restore_db", "--backup-id", str(backup_record.pk), "--tables", "core_concept", "--confirm")
    assert Concept.objects.filter(code="C7").exists()


@pytest.fixture
def ring(settings):
    def configure(*keys: str, single: str | None = None) -> None:
        settings.BACKUP_ENCRYPTION_KEYS = list(keys)
        settings.BACKUP_ENCRYPTION_KEY = single

    configure()
    return configure


def test_rotation_keeps_old_backups_restorable_with_the_old_key_listed_second(backup_dir, ring, some_data):
    ring(OLD_KEY)
    old = backup_create(encrypt=True, tag="old")
    assert old.encryption_key_id == key_id_of(OLD_KEY)
    # Rotate: the new key first, the old one kept after it.
    ring(NEW_KEY, OLD_KEY)
    new = backup_create(encrypt=True, tag="new")
    assert new.encryption_key_id == key_id_of(NEW_KEY) != old.encryption_key_id
    restore_concepts(old)
    restore_concepts(new)
    assert backup_verify(backup_record=old, restore_test=True).passed
    # The single-key variable still works, as the oldest key of the ring.
    ring(NEW_KEY, single=OLD_KEY)
    restore_concepts(old)


def test_a_backup_file_of_a_rotated_key_restores_with_the_whole_ring(tmp_path, backup_dir, ring, some_data):
    ring(OLD_KEY)
    output = tmp_path / "old.sql.zst"
    run_command("backup_db", "--output", str(output), "--encrypt")
    ring(NEW_KEY, OLD_KEY)
    Concept.objects.all().delete()
    run_command("restore_db", "--input", str(output), "--confirm", "--no-safety-backup")
    assert Concept.objects.count() == 30


def test_a_key_taken_out_of_the_ring_is_key_unavailable_not_failed(backup_dir, ring, some_data):
    # Given a verified plain backup, and an encrypted one whose key then leaves the ring
    plain = backup_create(tag="plain")
    assert backup_verify(backup_record=plain).passed
    ring(OLD_KEY)
    encrypted = backup_create(encrypt=True, tag="encrypted")
    ring(NEW_KEY)
    # When it is verified: key unavailable, checksum still checked, the backup still `succeeded`
    message = command_error("verify_backup", str(encrypted.pk), "--restore-test")
    assert message.startswith(f"Backup #{encrypted.pk}: checksum ok, Key unavailable: ")
    assert f"encrypted with key {key_id_of(OLD_KEY)}, which is not in the key ring" in message
    assert f"(BACKUP_ENCRYPTION_KEYS has {key_id_of(NEW_KEY)})" in message
    encrypted.refresh_from_db()
    assert encrypted.status == "succeeded" and encrypted.verification_status == "key_unavailable"
    assert encrypted.verification_details["checksum_ok"] is True
    # Health does not count it as a failure: the newest backup is still a successful one, and verified is fine
    checks = {check.name: check for check in health_check().checks}
    assert checks["last_backup"].status == "ok"
    assert checks["last_verified_backup"].status == "ok"
    assert checks["last_verified_backup"].details["key_unavailable"] == 1
    # And a restore refuses in one line before anything is done (no safety backup, no download, no change)
    Concept.objects.filter(code="C9").delete()
    before_files, before_records = tree(backup_dir), BackupRecord.objects.count()
    message = command_error("restore_db", "--backup-id", str(encrypted.pk), "--confirm")
    assert message.startswith(f"Key unavailable: backup #{encrypted.pk}")
    assert tree(backup_dir) == before_files and BackupRecord.objects.count() == before_records
    assert not Concept.objects.filter(code="C9").exists()
    # Putting the key back makes it restorable again
    ring(NEW_KEY, OLD_KEY)
    assert backup_verify(backup_record=encrypted).passed


def test_keys_never_reach_manifests_the_catalog_or_output(backup_dir, s3_bucket, ring, some_data):
    ring(NEW_KEY, OLD_KEY)
    output = run_command("backup_advanced", "--encrypt", "--upload-s3")
    backup_record = BackupRecord.objects.get()
    local_manifest = Path(backup_record.location + ".manifest.json").read_text()
    listed = run_command("list_backups", "--json")
    for text in (local_manifest, listed, output, str(list(BackupRecord.objects.values()))):
        assert NEW_KEY not in text and OLD_KEY not in text
    assert f'"encryption_key_id": "{key_id_of(NEW_KEY)}"' in local_manifest
    assert len(key_id_of(NEW_KEY)) == 16 and key_id_of(NEW_KEY) != key_id_of(OLD_KEY)
