""" "Back up now" with Redis configured: the admin enqueues run_backup, a real
`celery -A multipult worker` (own Redis database number, pytest's test database) takes the backup."""

from __future__ import annotations

import os

import pytest
from django.test import Client
from django.urls import reverse

from dbops.models import BackupRecord
from tests.dbops.admin.conftest import wait_for

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REDIS_DB = 6  # the admin's own broker database (the scheduling tests use 4)


@pytest.fixture
def worker_redis_db():
    return REDIS_DB


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
