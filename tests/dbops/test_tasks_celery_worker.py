"""The tasks on a real `celery -A multipult worker` and `celery beat` (DatabaseScheduler) against the
real Redis (its own database number, REDIS_DB=4), sharing pytest's PostgreSQL test database."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import psycopg2
import pytest
import redis
from celery import Celery
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from dbops.models import BackupRecord, RetentionPolicy, TaskRun
from dbops.services.backups.create import backup_create
from tests.dbops.commandline import child_database_env
from tests.faults.observe import backup_lock_free
from tests.paths import ROOT

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


REDIS_DB = 4
CELERY = [sys.executable, "-m", "celery", "-A", "multipult"]


def wait_for(condition, *, timeout: float, what: str, logs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    tails = "\n".join(f"--- {log}\n{Path(log).read_text()[-4000:]}" for log in logs if Path(log).exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@pytest.fixture
def redis_url():
    url = f"redis://{os.environ['REDIS_HOST']}:{os.environ['REDIS_PORT']}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()  # our own database number: leftovers of an earlier run must not be executed
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def celery_env(transactional_db, redis_url, backup_dir, s3_bucket, tmp_path):
    """The environment of the worker and beat: this test database, backup folder and bucket."""
    s3 = settings.STORAGES["backups_s3"]["OPTIONS"]
    return os.environ | {
        **child_database_env(),
        "REDIS_DB": str(REDIS_DB),
        "BACKUP_DIR": str(backup_dir),
        "S3_BACKUP_BUCKET": s3_bucket,
        "S3_ENDPOINT_URL": s3["endpoint_url"],
        "LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
    }


class Processes:
    """Subprocesses in their own process groups, always killed (with their children) at teardown."""

    def __init__(self, env, folder: Path):
        self.env, self.folder, self.running = env, folder, []

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        handle = log.open("ab")
        process = subprocess.Popen(
            [*CELERY, *args], cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        handle.close()
        process.log = log
        self.running.append(process)
        return process

    def worker(self, name: str = "worker") -> subprocess.Popen:
        process = self.start(
            name,
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--loglevel=INFO",
            f"--hostname={name}-{uuid.uuid4().hex[:6]}@%h",
        )
        wait_for(lambda: b"ready." in process.log.read_bytes(), timeout=90, what=f"{name} ready", logs=[process.log])
        return process

    def kill(self, process: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def logs(self):
        return [p.log for p in self.running]

    def stop_all(self) -> None:
        for process in self.running:
            self.kill(process)


@pytest.fixture
def processes(celery_env, tmp_path):
    running = Processes(celery_env, tmp_path)
    yield running
    running.stop_all()


@pytest.fixture
def client_app(redis_url):
    """A producer on the worker's broker (pytest's own celery app may point at another Redis db)."""
    # not the current app: shared tasks used in-process elsewhere must keep resolving to multipult's app
    app = Celery("dbops-tests", broker=redis_url, backend=redis_url, set_as_current=False)
    yield app
    app.close()


def test_beat_runs_a_periodic_backup_created_in_the_database(processes):
    # Given a periodic backup task created in the database, as staff would in the admin (task runs left by
    # earlier tests in the operations database are not this one's)
    earlier_runs = list(TaskRun.objects.values_list("pk", flat=True))
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="test: backup now",
        task="dbops.tasks.run_backup",
        interval=every_second,
        kwargs=json.dumps({"compression": "zstd", "tag": "from-beat"}),
        one_off=True,
    )
    # When a real worker and beat (DatabaseScheduler) run
    processes.worker()
    processes.start("beat", "beat", "--loglevel=INFO", "--scheduler=django_celery_beat.schedulers:DatabaseScheduler")
    # Then a scheduled backup appears succeeded, uploaded, with its task run recorded
    task_run = wait_for(
        lambda: (
            TaskRun.objects.filter(task_name="run_backup", status__in=["succeeded", "failed"])
            .exclude(pk__in=earlier_runs)
            .first()
        ),
        timeout=120,
        what="the scheduled backup task",
        logs=processes.logs(),
    )
    assert task_run.status == "succeeded" and task_run.attempts == 1, task_run.error
    backup_record = BackupRecord.objects.get(pk=task_run.backup_record_id)
    assert backup_record.status == "succeeded" and backup_record.tag == "from-beat"
    assert backup_record.triggered_by == "schedule" and backup_record.uploaded_to_s3
    assert Path(backup_record.location).is_file() and backup_record.finished_at is not None
    # one_off: beat sent it once, so exactly one backup was taken
    assert BackupRecord.objects.filter(tag="from-beat").count() == 1


def test_retention_task_on_the_worker_removes_the_right_files_from_s3(processes, client_app, s3_bucket):
    # Given four uploaded backups taken today, yesterday, 3 and 40 days ago
    records = []
    for days in (0, 1, 3, 40):
        backup_record = backup_create(compression="zstd", upload_s3=True)
        BackupRecord.objects.filter(pk=backup_record.pk).update(started_at=timezone.now() - dt.timedelta(days=days))
        records.append(backup_record)
    RetentionPolicy.objects.create(name="two-days", keep_daily=2, keep_weekly=0, keep_monthly=0)
    options = settings.STORAGES["backups_s3"]["OPTIONS"]
    s3 = boto3.client(
        "s3",
        endpoint_url=options["endpoint_url"],
        aws_access_key_id=options["access_key"],
        aws_secret_access_key=options["secret_key"],
        region_name="us-east-1",
    )

    def keys():
        return {item["Key"] for item in s3.list_objects_v2(Bucket=s3_bucket).get("Contents", [])}

    assert len(keys()) == 8
    # When the worker runs the retention task
    processes.worker()
    result = client_app.send_task("dbops.tasks.apply_retention", kwargs={}).get(timeout=120)
    # Then exactly the two old backups are gone from S3 and disk, the two recent ones stay
    kept, deleted = records[:2], records[2:]
    assert sorted(result["policies"]["two-days"]["deleted"]) == sorted(b.pk for b in deleted)
    expected = {f"{b.s3_key}{suffix}" for b in kept for suffix in ("", ".manifest.json")}
    assert keys() == expected
    assert all(Path(b.location).is_file() for b in kept)
    assert not any(Path(b.location).exists() for b in deleted)
    assert set(BackupRecord.objects.filter(status="deleted").values_list("pk", flat=True)) == {b.pk for b in deleted}


def _table_lock(table: str):
    """Holds an ACCESS EXCLUSIVE lock from another session, so a backup blocks mid-run."""
    params = connection.settings_dict
    holder = psycopg2.connect(
        dbname=params["NAME"],
        host=params["HOST"],
        port=params["PORT"],
        user=params["USER"],
        password=params["PASSWORD"],
    )
    with holder.cursor() as cursor:
        cursor.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')  # noqa: S608 (a constant)
    return holder


def _waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def test_killing_the_worker_mid_backup_leaves_nothing_succeeded_and_no_lock(processes, client_app, backup_dir):
    # Given a backup running on the worker, blocked behind a table lock (so it is surely mid-run)
    holder = _table_lock("core_concept")
    try:
        worker = processes.worker()
        task_id = f"backup-{uuid.uuid4().hex}"
        client_app.send_task("dbops.tasks.run_backup", kwargs={"upload_s3": False, "tag": "killed"}, task_id=task_id)
        running = wait_for(
            lambda: BackupRecord.objects.filter(tag="killed", status="running").first(),
            timeout=90,
            what="the backup to start",
            logs=processes.logs(),
        )
        wait_for(_waiting_on_locks, timeout=60, what="the backup to block", logs=processes.logs())
        assert not backup_lock_free()
        # When the whole worker (and its pg_dump) is killed with SIGKILL
        processes.kill(worker)
    finally:
        holder.close()

    # Then nothing claims success, no complete-looking artifact exists, and the task run is not done
    running.refresh_from_db()
    assert running.status == "running"
    assert not [p for p in backup_dir.rglob("*") if p.is_file() and not p.name.endswith(".partial")]
    assert TaskRun.objects.get(task_id=task_id).status == "running"
    # And no lock is held forever: the server ends the dead worker's session (it notices the closed socket a
    # moment after the kill; a backup started in that moment is refused as "locked", which is right), and the
    # next backup then gets the lock and marks the killed one failed
    wait_for(backup_lock_free, timeout=30, what="the server to end the dead worker's lock")
    fresh = backup_create(compression="zstd", tag="after-kill")
    assert fresh.status == "succeeded"
    running.refresh_from_db()
    assert running.status == "failed" and "interrupted" in running.error
    assert not list(backup_dir.rglob("*.partial"))

    # And a redelivery of the lost message (same task id) on a new worker does the backup once
    worker2 = processes.worker("worker2")
    result = client_app.send_task(
        "dbops.tasks.run_backup", kwargs={"upload_s3": False, "tag": "killed"}, task_id=task_id
    ).get(timeout=120)
    task_run = TaskRun.objects.get(task_id=task_id)
    assert task_run.status == "succeeded" and task_run.attempts == 2
    assert BackupRecord.objects.get(pk=result["backup_id"]).status == "succeeded"
    # ... and once more delivered, it does nothing (the worker log shows the task's return value)
    client_app.send_task("dbops.tasks.run_backup", kwargs={"upload_s3": False, "tag": "killed"}, task_id=task_id)
    wait_for(
        lambda: b"already succeeded" in worker2.log.read_bytes(),
        timeout=120,
        what="the duplicate delivery",
        logs=processes.logs(),
    )
    assert TaskRun.objects.get(task_id=task_id).attempts == 2
    assert BackupRecord.objects.filter(tag="killed", status="succeeded").count() == 1
