"""The celery tasks run in-process (task.apply, as with REDIS_HOST unset): idempotency per task id,
outcomes on the records, failure notification; setup_schedules; the admin pages for schedules."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from dbops import tasks
from dbops.exceptions import BackupNotFound, RetentionError, UploadError, VerificationError
from dbops.models import BackupRecord, RetentionPolicy, TaskRun
from dbops.services.backups.create import backup_create
from dbops.services.ops.notifications import failure_notify
from tests.commands import run_command
from tests.dbops.commandline import child_database_env
from tests.paths import ROOT


def catalog_row(days_ago: float, **fields) -> BackupRecord:
    values = {
        "status": BackupRecord.Status.SUCCEEDED,
        "started_at": timezone.now() - dt.timedelta(days=days_ago),
        "engine": "postgresql",
        "database_name": "multipult",
        "format": "custom",
    }
    return BackupRecord.objects.create(**(values | fields))


pytestmark = pytest.mark.django_db


def test_setup_schedules_is_idempotent_and_keeps_staff_edits():
    first = json.loads(run_command("setup_schedules", "--json"))
    assert len(first["created"]) == 7 and first["existing"] == []  # six periodic tasks and the policy
    nightly = PeriodicTask.objects.get(name="dbops: nightly backup")
    assert nightly.task == "dbops.tasks.run_backup" and nightly.crontab.hour == "2"
    assert set(PeriodicTask.objects.values_list("task", flat=True)) >= {
        "dbops.tasks.run_backup",
        "dbops.tasks.apply_retention",
        "dbops.tasks.verify_latest_backup",
        "dbops.tasks.pitr_drill",
    }
    # Staff disable the backup and change the policy; a second run leaves both alone.
    nightly.enabled = False
    nightly.save()
    RetentionPolicy.objects.filter(name="default").update(keep_daily=3)
    second = json.loads(run_command("setup_schedules", "--json"))
    assert second["created"] == [] and len(second["existing"]) == 7
    assert PeriodicTask.objects.get(name="dbops: nightly backup").enabled is False
    assert RetentionPolicy.objects.get(name="default").keep_daily == 3
    assert PeriodicTask.objects.filter(name__startswith="dbops:").count() == 6


def test_every_task_is_registered_with_the_celery_app():
    from multipult.celery import app

    app.loader.import_default_modules()
    names = ("run_backup", "apply_retention", "verify_latest_backup", "verify_backup", "retry_failed_uploads")
    for name in (*names, "prune_snapshots"):
        task = app.tasks[f"dbops.tasks.{name}"]
        assert task.acks_late and task.max_retries == 3 and task.soft_time_limit < task.time_limit


def test_retention_task_writes_its_outcome_and_is_idempotent_per_task_id():
    # Catalog rows without artifacts: backup_delete only marks them deleted (and audits it).
    RetentionPolicy.objects.create(name="nightly", keep_daily=2, keep_weekly=0, keep_monthly=0)
    rows = [catalog_row(days) for days in range(5)]
    result = tasks.apply_retention.apply(task_id="retention-1").get()
    deleted = sorted(b.pk for b in rows[2:])
    assert sorted(result["policies"]["nightly"]["deleted"]) == deleted
    assert sorted(BackupRecord.objects.filter(status="deleted").values_list("pk", flat=True)) == deleted
    task_run = TaskRun.objects.get(task_id="retention-1")
    assert task_run.status == TaskRun.Status.SUCCEEDED and task_run.attempts == 1
    policy = RetentionPolicy.objects.get(name="nightly")
    assert policy.last_run_ok is True and sorted(policy.last_run_summary["deleted"]) == deleted

    # The same delivery again (a redelivered message) does nothing.
    old = catalog_row(10)
    again = tasks.apply_retention.apply(task_id="retention-1").get()
    assert again["skipped"] == "already succeeded"
    assert BackupRecord.objects.get(pk=old.pk).status == "succeeded"
    assert TaskRun.objects.get(task_id="retention-1").attempts == 1
    # A new delivery (new task id) does the work, and forgets task runs older than 90 days.
    ancient = TaskRun.objects.create(
        task_id="ancient", task_name="run_backup", status="succeeded",
        started_at=timezone.now() - dt.timedelta(days=100), finished_at=timezone.now() - dt.timedelta(days=100),
    )  # fmt: skip
    result = tasks.apply_retention.apply(task_id="retention-2").get()
    assert BackupRecord.objects.get(pk=old.pk).status == "deleted"
    assert result["task_runs_removed"] == 1 and not TaskRun.objects.filter(pk=ancient.pk).exists()


def test_a_failing_task_records_the_error_and_notifies(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.BACKUP_NOTIFY_EMAILS = ["backups@example.com", "ops@example.com"]
    # No enabled policy: the task fails (not transient, so no retry) and says why.
    with pytest.raises(RetentionError, match="No enabled retention policy"):
        tasks.apply_retention.apply(task_id="retention-fails")
    task_run = TaskRun.objects.get(task_id="retention-fails")
    assert task_run.status == TaskRun.Status.FAILED and "No enabled retention policy" in task_run.error
    (message,) = mail.outbox
    assert message.to == ["ops@example.com", "backups@example.com"]
    assert "dbops.tasks.apply_retention failed" in message.subject
    assert "No enabled retention policy" in message.body


def test_notification_without_recipients_only_logs(settings, caplog):
    settings.ADMINS, settings.BACKUP_NOTIFY_EMAILS = [], []
    assert failure_notify(subject="s", body="b") is False
    assert mail.outbox == []
    assert "s: b" in caplog.text


def test_a_mail_server_that_is_down_does_not_hide_the_failure(settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # closed port
    settings.BACKUP_NOTIFY_EMAILS = ["backups@example.com"]
    assert failure_notify(subject="backup failed", body="details") is False
    assert "could not mail the failure notification" in caplog.text


def test_a_run_still_alive_in_another_process_is_not_started_twice():
    import os

    TaskRun.objects.create(
        task_id="busy",
        task_name="apply_retention",
        started_at=timezone.now(),
        hostname=__import__("socket").gethostname(),
        pid=os.getppid(),  # a live process that is not us
    )
    result = tasks.apply_retention.apply(task_id="busy").get()
    assert result["skipped"].startswith("running in process")


def test_admin_lists_schedules_policies_and_task_runs(admin_client):
    run_command("setup_schedules")
    nightly = PeriodicTask.objects.get(name="dbops: nightly backup")
    for url in (
        "/admin/django_celery_beat/periodictask/",
        f"/admin/django_celery_beat/periodictask/{nightly.pk}/change/",
        "/admin/dbops/retentionpolicy/",
        f"/admin/dbops/retentionpolicy/{RetentionPolicy.objects.get(name='default').pk}/change/",
        "/admin/dbops/taskrun/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
    assert b"dbops: nightly backup" in admin_client.get("/admin/django_celery_beat/periodictask/").content


def test_transient_errors_are_retried_a_bounded_number_of_times(monkeypatch, settings):
    from django.db import OperationalError

    settings.BACKUP_NOTIFY_EMAILS = ["backups@example.com"]
    calls = []

    def flaky_run(**kwargs):
        calls.append(kwargs)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("dbops.services.ops.scheduling.retention_run", flaky_run)
    # An eager apply() retries only when errors do not propagate (celery's design).
    monkeypatch.setattr(tasks.apply_retention.app.conf, "task_eager_propagates", False)
    result = tasks.apply_retention.apply(task_id="flaky")
    assert result.state == "FAILURE" and isinstance(result.result, OperationalError)
    assert len(calls) == 1 + tasks.apply_retention.max_retries
    task_run = TaskRun.objects.get(task_id="flaky")
    assert task_run.status == TaskRun.Status.FAILED and task_run.attempts == 4
    assert len(mail.outbox) == 1 and "after 3 retries" in mail.outbox[0].body


@pytest.mark.django_db(transaction=True)
def test_failed_upload_is_recorded_then_retried_by_its_task(backup_dir, s3_bucket, settings):
    # Given a scheduled backup whose S3 copy fails (the bucket is gone)
    settings.BACKUP_NOTIFY_EMAILS = ["backups@example.com"]
    working = settings.STORAGES["backups_s3"]
    settings.STORAGES = settings.STORAGES | {
        "backups_s3": working | {"OPTIONS": working["OPTIONS"] | {"bucket_name": f"{s3_bucket}-missing"}}
    }
    with pytest.raises(UploadError):
        tasks.run_backup.apply(kwargs={"upload_s3": True, "tag": "upload-fails"}, task_id="upload-fails")
    # Then the backup is kept locally, the record says the upload failed, and someone is told
    task_run = TaskRun.objects.get(task_id="upload-fails")
    backup_record = task_run.backup_record
    assert task_run.status == "failed" and "UploadError" in task_run.error
    assert backup_record.status == "succeeded" and not backup_record.uploaded_to_s3 and backup_record.upload_error
    assert Path(backup_record.location).is_file()
    assert len(mail.outbox) == 1 and "run_backup failed" in mail.outbox[0].subject

    # When S3 is back and the retry task runs, the backup is uploaded and the error cleared
    settings.STORAGES = settings.STORAGES | {"backups_s3": working}
    result = tasks.retry_failed_uploads.apply(task_id="retry-1").get()
    assert result["uploaded"] == [backup_record.pk]
    backup_record.refresh_from_db()
    assert backup_record.uploaded_to_s3 and backup_record.upload_error == ""
    assert backup_record.s3_key.endswith(backup_record.storage_name)
    # And a later run has nothing left to do
    assert tasks.retry_failed_uploads.apply(task_id="retry-2").get()["uploaded"] == []


@pytest.mark.django_db(transaction=True)
def test_verify_latest_backup_restore_tests_the_newest_backup(backup_dir, settings):
    settings.BACKUP_NOTIFY_EMAILS = ["backups@example.com"]
    # No backup yet: the task fails and says so
    with pytest.raises(BackupNotFound, match="No successful backup"):
        tasks.verify_latest_backup.apply(task_id="verify-0")
    assert "No successful backup" in mail.outbox[0].body

    older = backup_create(compression="zstd")
    newest = backup_create(compression="gzip")
    result = tasks.verify_latest_backup.apply(task_id="verify-1").get()
    assert result == {
        "task_run": result["task_run"],
        "backup_id": newest.pk,
        "verification_status": "passed",
        "restore_test": True,
    }
    newest.refresh_from_db()
    older.refresh_from_db()
    assert newest.verification_status == "passed" and newest.verified_at is not None
    assert older.verification_status == "never"
    assert TaskRun.objects.get(task_id="verify-1").backup_record_id == newest.pk


@pytest.mark.django_db(transaction=True)
def test_verify_backup_verifies_the_given_backup_once_per_task_id(backup_dir):
    older = backup_create(compression="zstd")
    backup_create(compression="gzip")  # newer, not asked for

    result = tasks.verify_backup.apply(kwargs={"backup_id": older.pk}, task_id="verify-one").get()

    assert result == {"task_run": result["task_run"], "backup_id": older.pk, "verification_status": "passed",
                      "restore_test": True}  # fmt: skip
    older.refresh_from_db()
    verified_at = older.verified_at
    assert older.verification_status == "passed" and older.verification_details["restore_tested"] is True
    assert set(BackupRecord.objects.exclude(pk=older.pk).values_list("verification_status", flat=True)) == {"never"}
    # A redelivery of the same task id does not verify again
    again = tasks.verify_backup.apply(kwargs={"backup_id": older.pk}, task_id="verify-one").get()
    assert again["skipped"] == "already succeeded"
    older.refresh_from_db()
    assert older.verified_at == verified_at
    task_run = TaskRun.objects.get(task_id="verify-one")
    assert (task_run.task_name, task_run.attempts, task_run.backup_record_id) == ("verify_backup", 1, older.pk)


@pytest.mark.django_db(transaction=True)
def test_verify_backup_of_a_damaged_or_missing_backup_fails_its_task_run(backup_dir):
    damaged = backup_create(compression="zstd")
    artifact = backup_dir / damaged.storage_name
    artifact.write_bytes(b"not the backup")

    with pytest.raises(VerificationError, match=f"Backup #{damaged.pk} failed verification: .*is damaged"):
        tasks.verify_backup.apply(kwargs={"backup_id": damaged.pk}, task_id="verify-damaged")
    damaged.refresh_from_db()
    assert damaged.verification_status == "failed" and "is damaged" in damaged.verification_details["problems"][0]
    assert TaskRun.objects.get(task_id="verify-damaged").status == "failed"

    with pytest.raises(BackupNotFound, match="does not exist"):
        tasks.verify_backup.apply(kwargs={"backup_id": damaged.pk + 1000}, task_id="verify-missing")
    assert "BackupNotFound" in TaskRun.objects.get(task_id="verify-missing").error


@pytest.mark.django_db(transaction=True)
def test_without_redis_configured_delay_runs_the_task_in_process():
    import os
    import subprocess
    import sys

    RetentionPolicy.objects.create(name="nightly", keep_daily=1, keep_weekly=0, keep_monthly=0)
    rows = [catalog_row(days) for days in range(3)]
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_HOST", "REDIS_PORT", "REDIS_DB"}}
    env |= child_database_env()
    script = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "from dbops.tasks import apply_retention\n"
        "assert settings.CELERY_TASK_ALWAYS_EAGER\n"
        "print(sorted(apply_retention.delay().get()['policies']['nightly']['deleted']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env | {"DJANGO_SETTINGS_MODULE": "multipult.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(sorted(b.pk for b in rows[1:]))
    assert TaskRun.objects.get(task_name="apply_retention").status == "succeeded"


def test_admin_preview_action_lists_what_would_go_and_changes_nothing(admin_client):
    policy = RetentionPolicy.objects.create(name="nightly", keep_daily=1, keep_weekly=0, keep_monthly=0)
    rows = [catalog_row(days) for days in range(3)]
    response = admin_client.post(
        "/admin/dbops/retentionpolicy/",
        {"action": "preview_retention", "_selected_action": [policy.pk]},
        follow=True,
    )
    assert response.status_code == 200
    text = " | ".join(str(message) for message in response.context["messages"])
    assert f"nightly: keeps 1, would delete #{rows[1].pk}, #{rows[2].pk}." in text
    assert BackupRecord.objects.filter(status="deleted").count() == 0
    policy.refresh_from_db()
    assert policy.last_run_at is None
