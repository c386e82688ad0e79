"""A confirmed restore from the admin with Redis configured: the request only queues
dbops.tasks.restore_backup (nothing is restored in the request, which a big database would outlast),
and a real `celery -A multipult worker` restores it; the task's run, in the operations database,
ends succeeded although the database under it was replaced."""

from __future__ import annotations

import os
import re

import pytest
import redis
from django.db import connection
from django.test import Client
from django.urls import reverse

from dbops.models import BackupRecord, RestoreRecord, TaskRun
from dbops.services.backups.create import backup_create
from multipult.core.models import Role
from tests.dbops.admin.conftest import wait_for

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REDIS_DB = 12  # this module's own broker database (verify: 11, back up now: 6, scheduling: 4, health: 13)


@pytest.fixture
def worker_redis_db():
    return REDIS_DB


def test_the_request_queues_the_restore_and_the_worker_runs_it(
    superuser, backup_dir, app_on_own_broker, broker_url, start_worker, drop_pre_restore_databases
):
    # Given a backup, rows written after it, and no worker running yet
    Role.objects.create(name="in-the-backup")
    backup_record = backup_create(tag="restore-by-worker")
    Role.objects.create(name="after-the-backup")
    client = Client()
    client.force_login(superuser)

    # When a superuser confirms the restore by typing the database's name
    response = client.post(
        reverse("admin:dbops_backuprecord_restore", args=[backup_record.pk]),
        {"typed_name": connection.settings_dict["NAME"]},
        follow=True,
    )

    # Then the request only queued one task and named it; nothing was restored yet
    html = response.content.decode()
    (task_id,) = re.findall(rf"from backup #{backup_record.pk} queued as task ([0-9a-f-]{{36}})", html)
    assert set(Role.objects.values_list("name", flat=True)) == {"in-the-backup", "after-the-backup"}
    assert not RestoreRecord.objects.exists() and not TaskRun.objects.exists()
    queue = redis.Redis.from_url(broker_url)
    assert queue.llen("celery") == 1
    queue.close()

    # When a worker starts, it restores; its task run ends succeeded in the operations database
    worker = start_worker()
    task_run = wait_for(
        lambda: TaskRun.objects.filter(task_id=task_id, status__in=["succeeded", "failed"]).first(),
        timeout=180,
        what="the restore task",
        log=worker.log,
    )
    assert task_run.status == TaskRun.Status.SUCCEEDED, task_run.error
    assert task_run.pid != os.getpid() and task_run.arguments["requested_by"] == "root"
    connection.close()  # the worker swapped the database under this session
    assert set(Role.objects.values_list("name", flat=True)) == {"in-the-backup"}
    restore_record = RestoreRecord.objects.get(pk=task_run.result["restore_record_id"])
    assert restore_record.status == RestoreRecord.Status.SUCCEEDED and restore_record.triggered_by == "admin"
    safety = BackupRecord.objects.get(pk=task_run.result["safety_backup_id"])
    assert safety.kind == BackupRecord.Kind.SAFETY and safety.triggered_by_user == "root"
