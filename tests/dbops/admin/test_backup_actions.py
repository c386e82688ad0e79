"""The admin's "Back up now" and "Verify (restore test)" against the real backup engine, pg_dump and
PostgreSQL, with tasks in-process (the REDIS_HOST-unset mode)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from dbops.models import BackupRecord

pytestmark = pytest.mark.django_db(transaction=True)


def test_backup_now_button_takes_a_backup_recorded_as_admin(superuser, backup_dir, celery_in_process):
    client = Client()
    client.force_login(superuser)

    response = client.post(reverse("admin:dbops_backuprecord_backup_now"), follow=True)

    assert response.status_code == 200
    backup_record = BackupRecord.objects.get()
    assert backup_record.status == BackupRecord.Status.SUCCEEDED
    assert (backup_record.triggered_by, backup_record.triggered_by_user) == ("admin", "root")
    assert backup_record.row_counts["core_user"] == 1
    assert (backup_dir / backup_record.storage_name).stat().st_size == backup_record.size_bytes
    assert "Backup finished" in response.content.decode()
    assert "backup-status-succeeded" in response.content.decode()


def test_backup_now_action_from_the_list(superuser, backup_dir, celery_in_process):
    client = Client()
    client.force_login(superuser)
    client.post(reverse("admin:dbops_backuprecord_backup_now"))
    first = BackupRecord.objects.get()

    client.post(
        reverse("admin:dbops_backuprecord_changelist"), {"action": "backup_now", "_selected_action": [first.pk]}
    )

    assert BackupRecord.objects.filter(status="succeeded", triggered_by="admin").count() == 2


def test_periodic_task_form_offers_our_tasks_by_name(superuser):
    client = Client()
    client.force_login(superuser)

    html = client.get(reverse("admin:django_celery_beat_periodictask_add")).content.decode()

    for task_name in ("dbops.tasks.run_backup", "dbops.tasks.apply_retention", "dbops.tasks.verify_latest_backup"):
        assert f'<option value="{task_name}">' in html
