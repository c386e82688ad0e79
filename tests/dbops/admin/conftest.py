"""Users, catalog rows and logins for the admin tests (the browser itself is tests/browser.py: Debian's
/usr/bin/chromium driven by Playwright against pytest-django's live server, a real HTTP server on the
real test database); and a real celery worker for the actions the admin enqueues (each module on its
own Redis database number)."""

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

from tests.browser import PASSWORD, screenshot  # noqa: F401  (the admin tests import them from here)
from tests.dbops.commandline import child_database_env
from tests.paths import ROOT


@pytest.fixture
def superuser(db, django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def staff_user(db, django_user_model):
    """Staff who may see backups but holds no restore permission."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("clerk", "clerk@example.com", PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="dbops", codename__startswith="view_"))
    return user


@pytest.fixture
def restorer(staff_user):
    """Staff who is not a superuser but holds dbops.restore_backup."""
    from django.contrib.auth.models import Permission

    staff_user.user_permissions.add(Permission.objects.get(content_type__app_label="dbops", codename="restore_backup"))
    return type(staff_user).objects.get(pk=staff_user.pk)  # fresh instance: no cached permissions


def make_backup_record(**fields):
    """A catalog row as the backup service writes it (for pages that only read the catalog)."""
    from django.db import connection
    from django.utils import timezone

    from dbops.models import BackupRecord

    now = timezone.now()
    values = {
        "status": BackupRecord.Status.SUCCEEDED,
        "started_at": now,
        "finished_at": now,
        "engine": connection.vendor,
        "database_name": connection.settings_dict["NAME"],
        "format": BackupRecord.Format.CUSTOM,
        "compression": BackupRecord.Compression.ZSTD,
        "size_bytes": 3 * 1024 * 1024,
        "sha256": "ab" * 32,
        "row_counts": {"core_concept": 120, "core_user": 7},
        "duration_seconds": 4.5,
        "triggered_by": BackupRecord.Trigger.CLI,
    }
    values.update(fields)
    return BackupRecord.objects.create(**values)


def admin_login(browser_page, live_server, user) -> None:
    browser_page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    browser_page.fill("#id_username", user.get_username())
    browser_page.fill("#id_password", PASSWORD)
    browser_page.click("input[type=submit]")
    browser_page.wait_for_selector("#site-name")
    assert "/admin/login/" not in browser_page.url, "login failed"


@pytest.fixture
def celery_in_process():
    """Tasks run in the request, as they do when REDIS_HOST is unset (the suite's env sets it)."""
    from multipult.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = previous


# --- a real celery worker for the admin's queued actions ----------------------------------------
# Each test module names its own Redis database number (fixture `worker_redis_db`), so runs of
# different modules, and the scheduling tests (db 4), never take each other's messages.


def wait_for(condition, *, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}\n{log.read_text()[-4000:] if log.exists() else ''}")


@pytest.fixture
def broker_url(worker_redis_db):
    url = f"redis://{os.environ['REDIS_HOST']}:{os.environ['REDIS_PORT']}/{worker_redis_db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@contextlib.contextmanager
def app_on_broker(url: str):
    """Points this process's celery app (the admin's producer) at the broker `url`, not eager."""
    from multipult.celery import app

    def reset_pools():
        # close and forget every broker connection/producer pool, so the next send builds new ones
        kombu.pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    saved = (app.conf.broker_url, app.conf.task_always_eager)
    reset_pools()
    app.conf.broker_url, app.conf.task_always_eager = url, False
    try:
        yield app
    finally:
        reset_pools()
        app.conf.broker_url, app.conf.task_always_eager = saved


@pytest.fixture
def app_on_own_broker(broker_url):
    with app_on_broker(broker_url) as app:
        yield app


@pytest.fixture
def start_worker(transactional_db, worker_redis_db, backup_dir, s3_bucket, tmp_path):
    """Starts a real `celery -A multipult worker` on our broker database and pytest's test database
    when called (a test may enqueue first); it is killed with its process group at teardown."""
    from django.conf import settings

    env = os.environ | {
        **child_database_env(),
        "REDIS_DB": str(worker_redis_db),
        "BACKUP_DIR": str(backup_dir),
        "S3_BACKUP_BUCKET": s3_bucket,
        "S3_ENDPOINT_URL": settings.STORAGES["backups_s3"]["OPTIONS"]["endpoint_url"],
        "LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
    }
    started = []

    def start() -> subprocess.Popen:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("ab") as handle:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "multipult", "worker", "--pool=solo", "--loglevel=INFO",
                 f"--hostname=admin-{uuid.uuid4().hex[:6]}@%h"],
                cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        process.log = log
        started.append(process)
        wait_for(lambda: b"ready." in log.read_bytes(), timeout=90, what="the worker", log=log)
        return process

    try:
        yield start
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture
def worker(start_worker):
    return start_worker()
