"""RestoreRecord, the status row of every restore, and the signals the project's audit log hangs on, on
the real PostgreSQL (the test database itself is restored, swapped by rename). Here the history lives in
the operations database; tests/test_sample_project.py covers a project whose history shares the
restored database (carried across the restore)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.db.models.signals import post_save
from django.utils import timezone

from dbops.engines import get_connector
from dbops.models import BackupRecord, RestoreRecord
from dbops.services.backups.create import backup_create, backup_delete
from dbops.services.backups.restore import backup_restore
from dbops.services.backups.restore_history import INTERRUPTED, restore_records_interrupted_fail
from dbops.signals import backup_deleted, database_restored
from multipult.core.models import AuditLog, DictionaryEntry, Role
from tests.commands import command_error, run_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drop_pre_restore_databases")]


def test_a_restore_is_recorded_running_then_succeeded_and_the_history_outlives_the_rewinds(backup_dir, some_data):
    backup_record = backup_create(tag="before the mistake")
    statuses_seen_during_the_safety_backup = []

    def note_status(sender, instance, **kwargs):
        if instance.kind == BackupRecord.Kind.SAFETY:
            statuses_seen_during_the_safety_backup.extend(RestoreRecord.objects.values_list("status", flat=True))

    post_save.connect(note_status, sender=BackupRecord, dispatch_uid="test.restore_record.note_status")
    try:
        # Given a first restore of the backup...
        first = backup_restore(backup_record=backup_record, triggered_by_user="ops-anna")
        kept_by_the_first = get_connector().pre_restore_databases()
        # Copies are named to the second: a second swap within the same second would need the same name.
        get_connector().drop_database(first.previous_database)
        Role.objects.create(name="made-between-restores")
        # When the same backup is restored again (its database has neither restore in it)
        second = backup_restore(backup_record=backup_record, safety_backup=False, triggered_by="admin")
    finally:
        post_save.disconnect(dispatch_uid="test.restore_record.note_status")

    # Then the record was running while the restore worked...
    assert "running" in statuses_seen_during_the_safety_backup
    # ...and both restores are in the history, finished, with their facts.
    records = list(RestoreRecord.objects.order_by("pk"))
    assert [r.pk for r in records] == [first.restore_record.pk, second.restore_record.pk]
    done, again = records
    assert (done.status, done.backup_id, done.database_name) == ("succeeded", backup_record.pk, first.database_name)
    assert done.safety_backup_id == first.safety_backup.pk and done.triggered_by_user == "ops-anna"
    assert kept_by_the_first == [done.previous_database]
    assert done.finished_at >= done.started_at and done.duration_seconds > 0 and done.tables == []
    assert (again.status, again.triggered_by, again.safety_backup_id) == ("succeeded", "admin", None)
    assert not Role.objects.filter(name="made-between-restores").exists()
    # The id sequence was moved past the carried rows.
    assert (
        RestoreRecord.objects.create(
            source="x", database_alias="default", database_name="x", started_at=done.started_at
        ).pk
        > again.pk
    )


def test_a_refused_restore_is_recorded_failed_and_leaves_data_and_backups_alone(backup_dir, some_data):
    backup_record = backup_create()
    artifact = Path(backup_record.location)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))
    DictionaryEntry.objects.filter(key="k1").delete()
    entries, records = DictionaryEntry.objects.count(), sorted(BackupRecord.objects.values_list("pk", "status"))

    command_error("restore_db", "--backup-id", str(backup_record.pk), "--confirm", match="damaged")

    (failed,) = RestoreRecord.objects.all()
    assert (failed.status, failed.backup_id) == ("failed", backup_record.pk)
    assert "damaged" in failed.error and failed.finished_at is not None and failed.safety_backup_id is None
    assert DictionaryEntry.objects.count() == entries
    assert sorted(BackupRecord.objects.values_list("pk", "status")) == records
    assert get_connector().pre_restore_databases() == []
    assert not AuditLog.objects.filter(action="restore").exists()  # the audit hears of restores that happened


def test_a_file_restore_is_recorded_with_its_path(tmp_path, backup_dir, some_data):
    output = tmp_path / "backup.sql"
    run_command("backup_db", "--output", str(output))

    run_command("restore_db", "--input", str(output), "--confirm", "--no-safety-backup")

    (restore_record,) = RestoreRecord.objects.all()
    assert (restore_record.status, restore_record.backup_id, restore_record.input_path) == (
        "succeeded",
        None,
        str(output),
    )
    assert restore_record.source == str(output)


def test_a_failing_audit_receiver_does_not_undo_the_restore_and_is_reported(backup_dir, some_data):
    backup_record = backup_create()

    def broken_receiver(sender, **kwargs):
        raise RuntimeError("audit store is full")

    database_restored.connect(broken_receiver, dispatch_uid="test.broken_receiver")
    try:
        result = backup_restore(backup_record=backup_record, tables=["core_concept"], safety_backup=False)
    finally:
        database_restored.disconnect(dispatch_uid="test.broken_receiver")

    assert any("broken_receiver failed: RuntimeError: audit store is full" in warning for warning in result.warnings)
    restore_record = RestoreRecord.objects.get()
    assert restore_record.status == "succeeded"
    assert any("audit store is full" in warning for warning in restore_record.warnings)
    # MultiPULT's own receiver still wrote its entry, exactly as before the signal existed.
    entry = AuditLog.objects.get(action="restore")
    assert (entry.entity_type, entry.entity_id) == ("dbops.BackupRecord", backup_record.pk)
    assert entry.changes["tables"] == ["core_concept"] and entry.changes["triggered_by"] == "cli"


def test_backup_delete_sends_the_facts_to_receivers(backup_dir, some_data):
    backup_record = backup_create()
    heard = []

    def listener(sender, **facts):
        heard.append((sender, facts))

    backup_deleted.connect(listener, dispatch_uid="test.listener")
    try:
        assert backup_delete(backup_record=backup_record, reason="test says so") == []
    finally:
        backup_deleted.disconnect(dispatch_uid="test.listener")

    ((sender, facts),) = heard
    assert sender is BackupRecord and facts["backup_record"].pk == backup_record.pk
    assert facts["reason"] == "test says so" and f"local:{backup_record.storage_name}" in facts["removed"]
    assert facts["deleted_at"] == BackupRecord.objects.get(pk=backup_record.pk).deleted_at


def test_only_running_records_whose_process_here_is_gone_are_marked_interrupted():
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)  # a process of this host that has exited (pids are not reused this fast)
    here = socket.gethostname()

    def record(**owner) -> RestoreRecord:
        return RestoreRecord.objects.create(
            source="t", database_alias="default", database_name="d", started_at=timezone.now(), **owner
        )

    killed = record(hostname=here, pid=dead_pid)
    alive = record(hostname=here, pid=os.getpid())
    elsewhere = record(hostname="another-host", pid=dead_pid)
    finished = record(hostname=here, pid=dead_pid, status="succeeded")

    assert restore_records_interrupted_fail() == [killed.pk]

    states = dict(RestoreRecord.objects.values_list("pk", "status"))
    assert states == {killed.pk: "failed", alive.pk: "running", elsewhere.pk: "running", finished.pk: "succeeded"}
    assert RestoreRecord.objects.get(pk=killed.pk).error == INTERRUPTED
    assert restore_records_interrupted_fail() == []  # once only
