""" "Verify (restore test)" with Redis configured: the admin only enqueues dbops.tasks.verify_backup
(nothing is restored in the request), and a real `celery -A multipult worker` (own Redis database
number, pytest's test database) restore-tests each backup and writes the outcome on its record."""

from __future__ import annotations

import os
import re

import pytest
import redis
from django.test import Client
from django.urls import reverse

from dbops.models import BackupRecord, TaskRun
from dbops.services.backups.create import backup_create
from tests.dbops.admin.conftest import wait_for

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REDIS_DB = 11  # this module's own broker database (back up now: 6, scheduling: 4, health: 13)


@pytest.fixture
def worker_redis_db():
    return REDIS_DB


def damage(backup_dir, backup_record: BackupRecord) -> None:
    artifact = backup_dir / backup_record.storage_name
    artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")


def test_verify_is_queued_by_the_request_and_run_by_the_worker(
    superuser, backup_dir, app_on_own_broker, broker_url, start_worker
):
    # Given a good and a damaged backup, and no worker running yet
    good = backup_create(tag="good")
    damaged = backup_create(tag="damaged")
    damage(backup_dir, damaged)
    client = Client()
    client.force_login(superuser)

    # When staff run the action on both
    response = client.post(
        reverse("admin:dbops_backuprecord_changelist"),
        {"action": "verify_restore_test", "_selected_action": [good.pk, damaged.pk]},
        follow=True,
    )

    # Then the request only queued two tasks: nothing verified, no task run yet, messages name the tasks
    html = response.content.decode()
    task_ids = dict(
        (int(pk), task_id)
        for pk, task_id in re.findall(r"Backup #(\d+): verification queued as task ([0-9a-f-]{36})", html)
    )
    assert set(task_ids) == {good.pk, damaged.pk}, html
    assert f"{reverse('admin:dbops_taskrun_changelist')}?q={task_ids[good.pk]}" in html
    assert set(BackupRecord.objects.values_list("verification_status", flat=True)) == {"never"}
    assert not TaskRun.objects.exists()
    queue = redis.Redis.from_url(broker_url)
    assert queue.llen("celery") == 2
    queue.close()

    # When a worker starts
    worker = start_worker()

    # Then it verifies both: the good one passed, the damaged one failed with the reason on the record
    finished = wait_for(
        lambda: TaskRun.objects.filter(status__in=["succeeded", "failed"]).count() == 2,
        timeout=180,
        what="both verification tasks",
        log=worker.log,
    )
    assert finished
    good.refresh_from_db()
    damaged.refresh_from_db()
    assert good.verification_status == "passed" and good.verified_at is not None
    assert good.verification_details["restore_tested"] is True
    assert good.verification_details["tables_checked"] == len(good.row_counts) > 0
    assert damaged.verification_status == "failed" and damaged.verified_at is not None
    assert f"Backup #{damaged.pk} is damaged" in damaged.verification_details["problems"][0]
    assert "SHA-256" in damaged.verification_details["problems"][0]
    good_run, damaged_run = (
        TaskRun.objects.get(task_id=task_ids[good.pk]),
        TaskRun.objects.get(task_id=task_ids[damaged.pk]),
    )
    assert (good_run.task_name, good_run.status, good_run.backup_record_id) == ("verify_backup", "succeeded", good.pk)
    assert good_run.arguments["requested_by"] == "root"
    assert good_run.pid != os.getpid()  # restored in the worker process, not in the request
    assert damaged_run.status == "failed" and f"Backup #{damaged.pk} failed verification" in damaged_run.error
    # and the record page shows the outcome
    page = client.get(reverse("admin:dbops_backuprecord_change", args=[damaged.pk])).content.decode()
    status_row = page[page.index("field-verification_status") :][:600]
    assert '<div class="readonly">Failed</div>' in status_row
    assert "is damaged" in page[page.index("field-verification_details") :]
