""" "Back up now" with Redis configured: the admin enqueues run_backup, a real
`celery -A multipult worker` (own Redis database number, pytest's test database) takes the backup."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kombu.pools
import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from dbops.models import BackupRecord

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]
REDIS_DB = 6  # the admin's own broker database (the scheduling tests use 4)


def wait_for(condition, *, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}\n{log.read_text()[-4000:] if log.exists() else ''}")


@pytest.fixture
def broker_url():
    url = f"redis://{os.environ['REDIS_HOST']}:{os.environ['REDIS_PORT']}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def app_on_own_broker(broker_url):
    """Points this process's celery app (the admin's producer) at our broker database."""
    from multipult.celery import app

    def reset_pools():
        # close and forget every broker connection/producer pool, so the next send builds new ones
        kombu.pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    saved = (app.conf.broker_url, app.conf.task_always_eager)
    reset_pools()
    app.conf.broker_url, app.conf.task_always_eager = broker_url, False
    yield app
    reset_pools()
    app.conf.broker_url, app.conf.task_always_eager = saved


@pytest.fixture
def worker(transactional_db, backup_dir, s3_bucket, tmp_path):
    env = os.environ | {
        "DB_NAME": connection.settings_dict["NAME"],
        "REDIS_DB": str(REDIS_DB),
        "BACKUP_DIR": str(backup_dir),
        "S3_BACKUP_BUCKET": s3_bucket,
        "S3_ENDPOINT_URL": settings.STORAGES["backups_s3"]["OPTIONS"]["endpoint_url"],
        "LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "worker.log"
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "multipult", "worker", "--pool=solo", "--loglevel=INFO",
             f"--hostname=admin-{uuid.uuid4().hex[:6]}@%h"],
            cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    process.log = log
    try:
        wait_for(lambda: b"ready." in log.read_bytes(), timeout=90, what="the worker", log=log)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_back_up_now_is_run_by_the_worker(superuser, app_on_own_broker, worker):
    client = Client()
    client.force_login(superuser)

    response = client.post(reverse("admin:dbops_backuprecord_backup_now"), follow=True)

    assert "Backup queued" in response.content.decode()
    backup_record = wait_for(
        lambda: BackupRecord.objects.filter(status__in=["succeeded", "failed"]).first(),
        timeout=120,
        what="the backup taken by the worker",
        log=worker.log,
    )
    assert backup_record.status == "succeeded", backup_record.error
    assert (backup_record.triggered_by, backup_record.triggered_by_user) == ("admin", "root")
    assert backup_record.pid != os.getpid()  # taken in the worker process, not in the request
    listing = client.get(reverse("admin:dbops_backuprecord_changelist")).content.decode()
    assert "backup-status-succeeded" in listing
