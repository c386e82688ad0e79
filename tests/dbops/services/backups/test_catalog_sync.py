"""catalog_sync against storage that looks empty, is unmounted, unreadable or unreachable: nothing turns
`deleted` (only our own delete does that), an artifact gone from one place is `missing` there and
`present` again when it comes back, and a sync that would hide every backup refuses in one line."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys

import pytest
from django.core.management.base import CommandError

from dbops.models import BackupRecord, RetentionPolicy
from dbops.services.backups.create import backup_create
from dbops.services.backups.retention import retention_plan
from tests.commands import command_error, run_command
from tests.paths import ROOT
from tests.ports import unused_port

pytestmark = pytest.mark.django_db(transaction=True)


def sync() -> str:
    return run_command("list_backups", "--sync")


def catalog() -> list[tuple]:
    return sorted(BackupRecord.objects.values_list("pk", "status", "local_presence", "s3_presence"))


def sync_refusal() -> str:
    with pytest.raises(CommandError) as excinfo:
        run_command("list_backups", "--sync")
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def unreachable_s3(settings) -> dict:
    """STORAGES with the S3 endpoint on a loopback port nothing listens on; returns the good STORAGES."""
    good = dict(settings.STORAGES)
    broken = dict(good)
    options = {**good["backups_s3"]["OPTIONS"], "endpoint_url": f"http://127.0.0.1:{unused_port()}"}
    broken["backups_s3"] = {**good["backups_s3"], "OPTIONS": options}
    settings.STORAGES = broken
    return good


def test_an_unmounted_backup_folder_is_refused_and_comes_back_when_remounted(backup_dir, mounts, tmp_path, some_data):
    # Given backups on a disk mounted at the backup folder
    disk = tmp_path / "disk"
    disk.mkdir()
    mounts.bind(disk, backup_dir)
    backup_create(tag="one")
    backup_create(tag="two")
    before = catalog()
    assert [row[1:] for row in before] == [("succeeded", "present", "")] * 2
    # When the disk is unmounted (the folder is there, and empty)
    mounts.unmount(backup_dir)
    # Then a sync refuses in one line naming the storage and what it held, and changes nothing
    assert sync_refusal() == (
        "Refusing to sync the catalog: it would mark all 2 backup(s) missing (local storage "
        f"{backup_dir}: 0 backup manifest(s) among 0 file(s)). Nothing was changed: check that the backup "
        "storage is mounted and reachable."
    )
    assert catalog() == before
    # And once it is mounted again, a sync finds everything where it was
    mounts.bind(disk, backup_dir)
    assert "0 now missing" in sync()
    assert catalog() == before


def test_an_emptied_folder_marks_missing_and_refilled_brings_them_back(backup_dir, s3_bucket, tmp_path, some_data):
    on_s3 = backup_create(upload_s3=True, tag="also on s3")
    local_only = backup_create(tag="local only")
    folder = backup_dir / on_s3.storage_name.split("/")[0]
    # The folder's files are moved away (someone emptied it): not every backup would be hidden, so it syncs.
    shutil.move(folder, tmp_path / "away")
    output = sync()
    assert "1 now missing" in output
    assert (
        f"Backup #{local_only.pk}: artifact missing from local storage ({local_only.location}) and in no other "
        "storage: marked missing until it reappears." in output
    )
    assert f"Backup #{on_s3.pk}: artifact missing from local storage ({on_s3.location}); the other copy" in output
    assert catalog() == [(on_s3.pk, "succeeded", "missing", "present"), (local_only.pk, "missing", "missing", "")]
    assert not BackupRecord.objects.filter(status="deleted").exists()
    # A missing backup is refused by restore with what was looked at, and kept by retention.
    command_error(
        "restore_db", "--backup-id", str(local_only.pk), "--confirm", match="neither in local storage nor on S3"
    )

    shutil.move(tmp_path / "away", folder)
    output = sync()
    assert "1 found again" in output and f"Backup #{local_only.pk}: artifact back in local storage" in output
    assert catalog() == [(on_s3.pk, "succeeded", "present", "present"), (local_only.pk, "succeeded", "present", "")]


def test_an_unreadable_backup_folder_changes_nothing(backup_dir, test_db_env, some_data):
    backup_record = backup_create()
    before = catalog()
    # Root reads any folder: the child drops the capabilities that let it (as a service user would lack them).
    without_root_powers = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    env = {**os.environ, **test_db_env, "BACKUP_DIR": str(backup_dir)}
    for name in ("S3_BACKUP_BUCKET", "S3_ENDPOINT_URL"):
        env.pop(name, None)
    backup_dir.chmod(0)
    try:
        child = subprocess.run(
            [*without_root_powers, sys.executable, "manage.py", "list_backups", "--sync"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        backup_dir.chmod(0o700)
    assert child.returncode == 0, child.stderr
    assert f"local storage {backup_dir}: could not be listed (PermissionError: " in child.stdout
    assert "left as it was" in child.stdout and "0 now missing" in child.stdout
    assert catalog() == before
    backup_record.refresh_from_db()
    assert backup_record.status == "succeeded"


def test_an_unreachable_s3_changes_nothing_about_s3(backup_dir, s3_bucket, settings, some_data):
    backup_record = backup_create(upload_s3=True)
    for path in backup_dir.rglob("*"):
        if path.is_file():
            path.unlink()  # only the S3 copy is left
    good = unreachable_s3(settings)
    output = sync()
    assert f"S3 bucket {s3_bucket} (backups/): could not be listed (" in output and "left as it was" in output
    assert catalog() == [(backup_record.pk, "succeeded", "missing", "present")]
    settings.STORAGES = good
    sync()
    assert catalog() == [(backup_record.pk, "succeeded", "missing", "present")]


def test_a_refusal_names_every_storage_it_looked_at(backup_dir, s3_bucket, settings, some_data):
    backup_record = backup_create()  # local only
    for path in backup_dir.rglob("*"):
        if path.is_file():
            path.unlink()
    unreachable_s3(settings)
    message = sync_refusal()
    assert message.startswith("Refusing to sync the catalog: it would mark all 1 backup(s) missing (")
    assert f"local storage {backup_dir}: 0 backup manifest(s) among 0 file(s); S3 bucket {s3_bucket}" in message
    assert "could not be listed (EndpointConnectionError" in message
    assert catalog() == [(backup_record.pk, "succeeded", "present", "")]


def test_retention_keeps_a_missing_backup(db):
    # Midday, so "an hour ago" is today: just after midnight it would be yesterday, outside keep_daily=1.
    now = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
    newest = BackupRecord(pk=1, started_at=now - dt.timedelta(hours=1), status="succeeded", kind="full")
    missing = BackupRecord(pk=2, started_at=now - dt.timedelta(days=400), status="missing", kind="full")
    failed = BackupRecord(pk=3, started_at=now - dt.timedelta(days=401), status="failed", kind="full")
    policy = RetentionPolicy(name="t", keep_daily=1, keep_weekly=0, keep_monthly=0, kind="full")
    plan = retention_plan(backups=[newest, missing, failed], policy=policy, now=now)
    decisions = {decision.backup.pk: decision for decision in plan.decisions}
    assert decisions[2].keep and "missing from storage" in decisions[2].reasons[0]
    assert not decisions[3].keep  # the other non-succeeded records still go
