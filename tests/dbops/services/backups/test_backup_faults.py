"""Faults and managed-backup features on the real servers: S3 (moto) upload and its failure, the
one-at-a-time lock, killed runs, pg_dump missing or failing, encryption, catalog sync, warnings."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import boto3
import pytest

from dbops.artifacts.crypto import MAGIC
from dbops.engines import get_connector
from dbops.engines.postgresql import PostgreSQLConnector, tools
from dbops.models import BackupRecord
from dbops.services.backups.create import backup_create, backup_upload_retry
from dbops.services.backups.restore import _compatibility_warnings
from multipult.core.models import Concept, DictionaryEntry
from tests.commands import command_error, on_a_terminal, run_command
from tests.dbops.commandline import child_database_env
from tests.faults import observe
from tests.paths import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def snapshot(folder: Path) -> dict:
    return {
        "files": {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*")
            if p.is_file()
        },
        "records": sorted(BackupRecord.objects.values_list("pk", "status", "sha256")),
        "entries": DictionaryEntry.objects.count(),
    }


def s3_client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def test_upload_to_s3_then_restore_from_s3_when_local_copy_is_gone(backup_dir, s3_bucket, some_data):
    output = run_command("backup_advanced", "--upload-s3", "--quiet")
    backup_record = BackupRecord.objects.get()
    assert backup_record.uploaded_to_s3 and f"and s3://{s3_bucket}/{backup_record.s3_key}," in output
    body = s3_client().get_object(Bucket=s3_bucket, Key=backup_record.s3_key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == backup_record.sha256
    manifest = json.loads(
        s3_client().get_object(Bucket=s3_bucket, Key=backup_record.s3_key + ".manifest.json")["Body"].read()
    )
    assert manifest["sha256"] == backup_record.sha256 and manifest["uploaded_to_s3"] is True

    Path(backup_record.location).unlink()
    Concept.objects.all().delete()
    run_command("restore_db", "--backup-id", str(backup_record.pk), "--tables", "core_concept", "--confirm")
    assert Concept.objects.count() == 30
    assert "verified" in run_command("verify_backup", str(backup_record.pk))


def test_s3_unreachable_keeps_local_copy_and_records_the_error(backup_dir, s3_bucket, settings, some_data):
    good = dict(settings.STORAGES)
    broken = dict(good)
    broken["backups_s3"] = {
        **good["backups_s3"],
        "OPTIONS": {**good["backups_s3"]["OPTIONS"], "endpoint_url": "http://127.0.0.1:9"},
    }
    settings.STORAGES = broken
    out = StringIO()
    command_error("backup_advanced", "--upload-s3", "--quiet", stdout=out, match="Upload to S3 failed")
    backup_record = BackupRecord.objects.get()
    assert f"Backup #{backup_record.pk} kept locally" in out.getvalue()
    assert backup_record.status == "succeeded" and not backup_record.uploaded_to_s3
    assert "Upload to S3 failed" in backup_record.upload_error
    assert hashlib.sha256(Path(backup_record.location).read_bytes()).hexdigest() == backup_record.sha256

    settings.STORAGES = good  # S3 is back: the retry uploads the kept copy
    backup_upload_retry(backup_record=backup_record)
    backup_record.refresh_from_db()
    assert backup_record.uploaded_to_s3 and backup_record.upload_error == ""


def test_second_backup_of_the_same_database_is_refused_while_one_runs(backup_dir, some_data, tmp_path):
    run_command("backup_db", "--output", str(tmp_path / "b.sql"))
    before = snapshot(backup_dir)
    with get_connector().lock():
        command_error("backup_advanced", "--quiet", match="Another backup or restore")
        command_error(
            "restore_db",
            "--input",
            str(tmp_path / "b.sql"),
            "--confirm",
            "--no-safety-backup",
            match="Another backup or restore",
        )
    assert snapshot(backup_dir) == before
    run_command("backup_advanced", "--quiet")  # free again once the first is done


def test_killed_run_leaves_no_complete_file_and_is_marked_failed_by_the_next(backup_dir, some_data):
    # A real child process is SIGKILLed in the middle of writing its artifact.
    script = (
        "import os, signal, django; django.setup();"
        "from dbops.services.backups.create import backup_create;"
        "backup_create(progress=lambda read, written: os.kill(os.getpid(), signal.SIGKILL))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "multipult.settings",
        **child_database_env(),
        "BACKUP_DIR": str(backup_dir),
    }
    child = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True)
    assert child.returncode == -9
    killed = BackupRecord.objects.get()
    assert killed.status == "running"
    written = [p.name for p in backup_dir.rglob("*") if p.is_file()]
    assert written and all(name.endswith(".partial") for name in written)
    assert "stale?" in run_command("list_backups")  # its pid is gone

    # The server ends the dead child's session (and its lock) once it notices the closed socket
    observe.wait_for(observe.backup_lock_free, timeout=30, what="the server to end the dead child's lock")
    backup_create()
    killed.refresh_from_db()
    assert killed.status == "failed" and "interrupted" in killed.error
    assert not list(backup_dir.rglob("*.partial"))


def test_pg_dump_missing(backup_dir, some_data, monkeypatch, tmp_path):
    before = snapshot(backup_dir)
    # Nowhere the engine looks: not on PATH, no pg_config, no Debian server folder.
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(tools, "SERVER_BIN_GLOB", str(tmp_path / "postgresql" / "*" / "bin"))
    command_error("backup_advanced", "--quiet", match="pg_dump not found .*install the PostgreSQL client programs")
    assert snapshot(backup_dir) == before


def test_pg_dump_failing_shows_its_stderr(backup_dir, some_data, monkeypatch):
    # A real failure: another session holds an exclusive lock, pg_dump gives up after its lock timeout.
    monkeypatch.setattr(PostgreSQLConnector, "lock_wait_timeout", "500ms")
    before_files = snapshot(backup_dir)["files"]
    holder = get_connector()._raw_connection(autocommit=False)
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLE core_concept IN ACCESS EXCLUSIVE MODE")
        command_error(
            "backup_advanced", "--quiet", match=r"(?s)pg_dump failed \(exit 1\).*LOCK TABLE public.core_concept"
        )
    finally:
        holder.rollback()
        holder.close()
    failed = BackupRecord.objects.get()
    assert failed.status == "failed" and "LOCK TABLE public.core_concept" in failed.error
    assert snapshot(backup_dir)["files"] == before_files
    assert Concept.objects.count() == 30


def test_encrypted_backup_restores_with_the_key_and_not_without(backup_dir, settings, some_data):
    settings.BACKUP_ENCRYPTION_KEY = "a long passphrase for the tests"
    run_command("backup_advanced", "--encrypt", "--format", "plain", "--quiet")
    backup_record = BackupRecord.objects.get()
    artifact = Path(backup_record.location).read_bytes()
    assert backup_record.encrypted and artifact.startswith(MAGIC) and b"colour number" not in artifact

    Concept.objects.all().delete()
    before = snapshot(backup_dir)
    restore = ("restore_db", "--backup-id", str(backup_record.pk), "--confirm", "--no-safety-backup")
    settings.BACKUP_ENCRYPTION_KEY = "the wrong key"
    command_error(*restore, match="Key unavailable: backup #.* not in the key ring")
    settings.BACKUP_ENCRYPTION_KEY = None
    command_error(*restore, match="no key is configured")
    assert snapshot(backup_dir) == before and Concept.objects.count() == 0

    settings.BACKUP_ENCRYPTION_KEY = "a long passphrase for the tests"
    run_command("restore_db", "--backup-id", str(backup_record.pk), "--confirm", "--no-safety-backup")
    assert Concept.objects.count() == 30
    for name in get_connector().pre_restore_databases():
        get_connector().drop_database(name, force=True)


def test_encrypt_without_key_is_refused_before_any_work(backup_dir, settings, some_data):
    settings.BACKUP_ENCRYPTION_KEY = None
    command_error("backup_advanced", "--encrypt", match="Encryption needs a key: set BACKUP_ENCRYPTION_KEYS")
    assert BackupRecord.objects.count() == 0


def test_list_backups_sync_rebuilds_the_catalog_from_storage(backup_dir, some_data):
    kept = backup_create(tag="kept")
    removed = backup_create(tag="removed")
    BackupRecord.objects.filter(pk=kept.pk).delete()  # the catalog forgot it (e.g. an older restore)
    for path in backup_dir.rglob(f"*-{removed.pk}.dump.zst*"):
        path.unlink()  # its artifact and manifest are gone from storage

    output = run_command("list_backups", "--sync")
    assert "1 added" in output and "1 now missing" in output
    assert f"Backup #{removed.pk}: artifact missing from local storage" in output
    restored = BackupRecord.objects.get(pk=kept.pk)
    assert (restored.tag, restored.sha256, restored.row_counts) == ("kept", kept.sha256, kept.row_counts)
    assert restored.location == kept.location and restored.local_presence == "present"  # a re-synced row keeps its path
    assert BackupRecord.objects.get(pk=removed.pk).status == "missing"  # not deleted: only our own delete does that


def test_restore_warns_on_newer_server_and_other_migration_state(db):
    connector = get_connector()
    assert (
        _compatibility_warnings(
            connector, {"server_version": connector.server_version(), "migration_state": connector.migration_state()}
        )
        == []
    )
    warnings = _compatibility_warnings(connector, {"server_version": "99.1", "migration_state": {"core": ["0001"]}})
    assert any("newer server" in w for w in warnings) and any("migration state" in w for w in warnings)


def test_progress_is_shown_on_a_tty_only(backup_dir, some_data):
    shown = on_a_terminal("backup_advanced")
    assert "\rbackup: " in shown and "/s" in shown
    assert "\r" not in on_a_terminal("backup_advanced", "--quiet")


def test_the_upload_to_s3_shows_its_own_percent_on_a_tty(backup_dir, s3_bucket, some_data):
    shown = on_a_terminal("backup_advanced", "--upload-s3")
    backup_record = BackupRecord.objects.get()
    assert backup_record.uploaded_to_s3
    upload_lines = [line for line in shown.split("\r") if line.startswith("upload to S3: ")]
    assert upload_lines and "100%" in upload_lines[-1], shown  # the artifact's size is the total
    assert shown.index("\rbackup: ") < shown.index("upload to S3: ")  # the dump's bar first, then its own


def test_backup_delete_removes_local_and_s3_copies_and_marks_the_record(backup_dir, s3_bucket, some_data):
    from dbops.services.backups.create import backup_delete
    from multipult.core.models import AuditLog

    backup_record = backup_create(upload_s3=True)
    keys = [item["Key"] for item in s3_client().list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert backup_record.s3_key in keys and backup_record.s3_key + ".manifest.json" in keys

    backup_delete(backup_record=backup_record, reason="retention: older than 30 days")

    assert s3_client().list_objects_v2(Bucket=s3_bucket).get("Contents", []) == []
    assert [p for p in backup_dir.rglob("*") if p.is_file()] == []
    backup_record.refresh_from_db()
    assert backup_record.status == "deleted" and backup_record.deleted_at is not None
    entry = AuditLog.objects.get(action="delete", entity_id=backup_record.pk)
    assert entry.changes["reason"] == "retention: older than 30 days"
    # A sync does not bring a deleted backup back.
    run_command("list_backups", "--sync")
    assert BackupRecord.objects.get(pk=backup_record.pk).status == "deleted"


def test_password_reaches_pg_tools_only_through_the_environment():
    connector = PostgreSQLConnector("default")
    password = connector.settings_dict["PASSWORD"]
    assert password
    assert all(password not in arg for arg in connector._conn_args())
    assert connector._env()["PGPASSWORD"] == password


def test_running_record_from_another_host_is_stale_only_after_silence(db):
    from datetime import timedelta

    from django.utils import timezone

    from dbops.services.backups.catalog import looks_stale

    record = BackupRecord(status="running", hostname="elsewhere", pid=1, started_at=timezone.now())
    record.heartbeat_at = timezone.now() - timedelta(seconds=5)
    assert not looks_stale(record)
    record.heartbeat_at = timezone.now() - timedelta(minutes=10)
    assert looks_stale(record)
    assert not looks_stale(
        BackupRecord(
            status="running",
            hostname=__import__("socket").gethostname(),
            pid=os.getpid(),
            started_at=timezone.now() - timedelta(hours=1),
        )
    )


def test_unknown_kind_or_compression_is_refused(backup_dir, some_data):
    from dbops.exceptions import BackupError

    with pytest.raises(BackupError, match="Unknown backup kind"):
        backup_create(kind="weekly")
    with pytest.raises(BackupError, match="Unknown compression"):
        backup_create(compression="lz4")
    assert BackupRecord.objects.count() == 0


def test_sync_while_s3_is_unreachable_does_not_mark_s3_backups_deleted(backup_dir, s3_bucket, settings, some_data):
    backup_record = backup_create(upload_s3=True)
    for path in backup_dir.rglob("*"):
        if path.is_file():
            path.unlink()  # only the S3 copy is left
    broken = dict(settings.STORAGES)
    broken["backups_s3"] = {
        **broken["backups_s3"],
        "OPTIONS": {**broken["backups_s3"]["OPTIONS"], "endpoint_url": "http://127.0.0.1:9"},
    }
    good, settings.STORAGES = settings.STORAGES, broken
    run_command("list_backups", "--sync")
    assert BackupRecord.objects.get(pk=backup_record.pk).status == "succeeded"
    settings.STORAGES = good
    run_command("list_backups", "--sync")
    assert BackupRecord.objects.get(pk=backup_record.pk).status == "succeeded"


def test_unreachable_database_gives_one_clear_message(backup_dir, db):
    from django.db import connections

    alias = "unreachable"
    config = {**connections.settings["default"], "PORT": 9, "NAME": "nowhere"}
    connections.settings[alias] = config
    try:
        command_error("backup_advanced", "--database", alias, "--quiet", match="Cannot connect to PostgreSQL")
    finally:
        connections[alias].close()
        del connections.settings[alias]
    assert BackupRecord.objects.count() == 0
