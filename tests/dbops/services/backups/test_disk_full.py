"""A disk that fills up, at each write of a backup: the artifact (mid-write), its manifest, the checksum
sidecar of a plain file, the safety backup before a restore, and the work folder a restore decodes into.

Each test mounts a real size-limited tmpfs, so the kernel itself answers ENOSPC. Where the fault must hit
one particular write (the manifest after a complete artifact, the sidecar after a complete file), the
disk is filled just before that write; everything else about the write is the real one.

Every case: one readable line, a non-zero outcome (CommandError), the record `failed`, no
complete-looking artifact and no orphan left, the database and existing backups exactly as they were."""

from __future__ import annotations

import tempfile

import pytest

from dbops.models import BackupRecord
from dbops.services.backups import create
from dbops.services.backups.create import backup_create, backup_export
from multipult.core.models import Concept, DictionaryEntry
from tests.commands import command_error, run_command
from tests.dbops.services.backups.conftest import fill_disk, tree

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drop_pre_restore_databases")]


def data_state() -> tuple[int, int]:
    return Concept.objects.count(), DictionaryEntry.objects.count()


def fill_before(monkeypatch, module, name: str, folder) -> list[str]:
    """Makes `module.name` (a write of the backup) run on a disk that just filled up."""
    real, calls = getattr(module, name), []

    def on_a_full_disk(*args, **kwargs):
        calls.append(name)
        fill_disk(folder)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, on_a_full_disk)
    return calls


def test_disk_full_in_the_middle_of_the_artifact(backup_dir, mounts, tmp_path, some_data):
    # Given a dump (plain, uncompressed) more than twice the size of a 16 KiB disk holding the backup folder
    full_size = backup_export(output=tmp_path / "measure.sql").size_bytes
    assert full_size > 2 * 16 * 1024
    mounts.tmpfs(backup_dir, "16k")
    before = data_state()
    # When the backup streams into it
    message = command_error("backup_advanced", "--compress", "none", "--format", "plain", "--quiet")
    # Then one line says what ran out where (a write, not the opening of the file), and nothing is left
    record = BackupRecord.objects.get()
    assert message.startswith(f"Backup #{record.pk} failed: Cannot write {backup_dir}/")
    assert message.endswith("No space left on device. Nothing was kept.") and "not writable" not in message
    assert record.status == "failed" and "No space left on device" in record.error
    assert tree(backup_dir) == {}  # no artifact, no .partial, no manifest
    assert data_state() == before


def test_disk_full_when_the_manifest_is_written(backup_dir, mounts, monkeypatch, some_data):
    # Given a complete artifact on disk, and the disk filling up right before its manifest is written
    mounts.tmpfs(backup_dir, "1m")
    kept = backup_create(tag="before the fault")
    kept_files = tree(backup_dir)
    calls = fill_before(monkeypatch, create, "manifest_write", backup_dir)
    # When the backup finishes
    message = command_error("backup_advanced", "--quiet")
    # Then it failed at the manifest, and the complete artifact it had written is gone too
    assert calls == ["manifest_write"]
    failed = BackupRecord.objects.exclude(pk=kept.pk).get()
    assert failed.status == "failed" and "manifest.json" in message and "No space left on device" in message
    assert not (backup_dir / failed.storage_name).exists()
    assert {name: digest for name, digest in tree(backup_dir).items() if name != "filler"} == kept_files
    kept.refresh_from_db()
    assert kept.status == "succeeded"


def test_disk_full_when_the_sidecar_is_written(tmp_path, mounts, monkeypatch, some_data):
    disk = mounts.tmpfs(tmp_path / "disk", "1m")
    output = disk / "backup.sql"
    calls = fill_before(monkeypatch, create, "sidecar_write", disk)
    message = command_error("backup_db", "--output", str(output))
    assert calls == ["sidecar_write"]
    assert "backup.sql.sha256" in message and "No space left on device" in message and "Nothing was written" in message
    assert sorted(tree(disk)) == ["filler"]  # neither the file nor its sidecar, nor a partial
    assert BackupRecord.objects.count() == 0


def test_disk_full_when_overwriting_keeps_the_previous_file_and_sidecar(tmp_path, mounts, monkeypatch, some_data):
    disk = mounts.tmpfs(tmp_path / "disk", "1m")
    output = disk / "backup.sql"
    run_command("backup_db", "--output", str(output))
    previous = tree(disk)
    assert sorted(previous) == ["backup.sql", "backup.sql.sha256"]
    fill_before(monkeypatch, create, "sidecar_write", disk)
    command_error("backup_db", "--output", str(output), "--overwrite")
    assert {name: digest for name, digest in tree(disk).items() if name != "filler"} == previous


def test_disk_full_during_the_safety_backup_restores_nothing(backup_dir, mounts, some_data):
    # Given a good backup on a small disk, rows deleted since, and that disk now full
    mounts.tmpfs(backup_dir, "1m")
    backup_record = backup_create()
    Concept.objects.filter(code__in=["C1", "C2"]).delete()
    fill_disk(backup_dir)
    before, files_before = data_state(), tree(backup_dir)
    # When restoring it (which takes a safety backup first)
    message = command_error("restore_db", "--backup-id", str(backup_record.pk), "--confirm")
    # Then the restore refuses in one line, and the database, the backup and the disk are as they were
    assert message.startswith("The safety backup failed, so nothing was restored: Backup #")
    assert "No space left on device" in message
    assert data_state() == before and not Concept.objects.filter(code="C1").exists()
    assert tree(backup_dir) == files_before
    safety = BackupRecord.objects.get(kind="safety")
    assert safety.status == "failed" and "No space left on device" in safety.error
    backup_record.refresh_from_db()
    assert backup_record.status == "succeeded"


def test_disk_full_while_decoding_is_not_called_damage(backup_dir, mounts, monkeypatch, tmp_path, some_data):
    # The restore decodes into a temporary folder; there the disk runs out (the backup itself is fine).
    backup_record = backup_create(compression="zstd")
    work = mounts.tmpfs(tmp_path / "work", "32k")
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    before, files_before = data_state(), tree(backup_dir)
    message = command_error("restore_db", "--backup-id", str(backup_record.pk), "--confirm")
    assert message.startswith("Cannot decode the backup into ") and "No space left on device" in message
    assert "damaged" not in message and "truncated" not in message
    assert data_state() == before and tree(backup_dir) == files_before
    assert not BackupRecord.objects.filter(kind="safety").exists()  # refused before the safety backup
