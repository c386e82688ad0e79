"""The admin's "Back up now" and "Verify (restore test)" against the real backup engine, pg_dump and
PostgreSQL, with tasks in-process (the REDIS_HOST-unset mode)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from dbops.models import BackupRecord, TaskRun
from tests.dbops.admin.conftest import app_on_broker, make_backup_record
from tests.ports import unused_port

pytestmark = pytest.mark.django_db(transaction=True)


def test_backup_now_button_takes_a_backup_recorded_as_admin(superuser, backup_dir, s3_bucket, celery_in_process):
    client = Client()
    client.force_login(superuser)

    response = client.post(reverse("admin:dbops_backuprecord_backup_now"), follow=True)

    assert response.status_code == 200
    backup_record = BackupRecord.objects.get()
    assert backup_record.status == BackupRecord.Status.SUCCEEDED
    assert (backup_record.triggered_by, backup_record.triggered_by_user) == ("admin", "root")
    assert backup_record.row_counts["core_user"] == 1
    assert (backup_dir / backup_record.storage_name).stat().st_size == backup_record.size_bytes
    assert backup_record.uploaded_to_s3  # the task uploads when a bucket is configured (our own here)
    assert "Backup finished" in response.content.decode()
    assert "backup-status-succeeded" in response.content.decode()


def test_backup_now_action_from_the_list(superuser, backup_dir, s3_bucket, celery_in_process):
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


def test_verify_action_restore_tests_and_records_the_outcome(superuser, backup_dir, celery_in_process):
    # REDIS_HOST unset: the queued verify_backup task runs in-process, so the page shows the outcome
    from dbops.services.backups.create import backup_create

    good = backup_create(tag="good")
    damaged = backup_create(tag="damaged")
    artifact = backup_dir / damaged.storage_name
    artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")
    client = Client()
    client.force_login(superuser)

    response = client.post(
        reverse("admin:dbops_backuprecord_changelist"),
        {"action": "verify_restore_test", "_selected_action": [good.pk, damaged.pk]},
        follow=True,
    )

    html = response.content.decode()
    good.refresh_from_db()
    damaged.refresh_from_db()
    assert good.verification_status == "passed" and good.verification_details["restore_tested"] is True
    assert damaged.verification_status == "failed"
    assert "is damaged" in damaged.verification_details["problems"][0]
    assert f"Backup #{good.pk}: verification passed" in html
    assert f"Backup #{damaged.pk}: verification FAILED: Backup #{damaged.pk} is damaged" in html
    runs = {run.backup_record_id: run for run in TaskRun.objects.filter(task_name="verify_backup")}
    assert runs[good.pk].status == "succeeded" and runs[damaged.pk].status == "failed"
    assert runs[good.pk].arguments == {"backup_id": good.pk, "restore_test": True, "requested_by": "root"}


def test_verify_button_on_the_record_page(superuser, backup_dir, celery_in_process):
    from dbops.services.backups.create import backup_create

    backup_record = backup_create(tag="button")
    client = Client()
    client.force_login(superuser)
    page = client.get(reverse("admin:dbops_backuprecord_change", args=[backup_record.pk])).content.decode()
    verify_url = reverse("admin:dbops_backuprecord_verify", args=[backup_record.pk])
    assert f'action="{verify_url}"' in page

    response = client.post(verify_url, follow=True)

    backup_record.refresh_from_db()
    assert backup_record.verification_status == "passed"
    assert f"Backup #{backup_record.pk}: verification passed" in response.content.decode()
    assert client.get(verify_url).status_code == 405


def test_verify_of_a_failed_backup_is_refused_without_queueing(superuser, celery_in_process):
    failed = make_backup_record(status=BackupRecord.Status.FAILED)
    client = Client()
    client.force_login(superuser)

    response = client.post(
        reverse("admin:dbops_backuprecord_changelist"),
        {"action": "verify_restore_test", "_selected_action": [failed.pk]},
        follow=True,
    )

    assert f"Backup #{failed.pk} is failed; nothing to verify." in response.content.decode()
    assert not TaskRun.objects.exists()
    failed.refresh_from_db()
    assert failed.verification_status == "never"


def test_verify_with_the_broker_down_says_so_and_changes_nothing(superuser):
    backup_record = make_backup_record()
    closed_port = unused_port()
    client = Client()
    client.force_login(superuser)

    with app_on_broker(f"redis://127.0.0.1:{closed_port}/0"):
        response = client.post(reverse("admin:dbops_backuprecord_verify", args=[backup_record.pk]), follow=True)

    assert response.status_code == 200
    assert f"Backup #{backup_record.pk}: could not queue the verification:" in response.content.decode()
    backup_record.refresh_from_db()
    assert backup_record.verification_status == "never" and not TaskRun.objects.exists()


def test_back_up_now_with_the_broker_down_says_so_and_starts_nothing(superuser):
    closed_port = unused_port()
    client = Client()
    client.force_login(superuser)

    with app_on_broker(f"redis://127.0.0.1:{closed_port}/0"):
        response = client.post(reverse("admin:dbops_backuprecord_backup_now"), follow=True)

    assert response.status_code == 200
    assert "Could not queue the backup:" in response.content.decode()
    assert not BackupRecord.objects.exists() and not TaskRun.objects.exists()


def test_verify_without_the_change_permission_is_denied(staff_user, django_user_model, celery_in_process):
    backup_record = make_backup_record()
    verify_url = reverse("admin:dbops_backuprecord_verify", args=[backup_record.pk])
    client = Client()
    client.force_login(staff_user)  # may view backups, not change them

    assert client.post(verify_url).status_code == 403
    page = client.get(reverse("admin:dbops_backuprecord_change", args=[backup_record.pk])).content.decode()
    assert verify_url not in page
    # the list offers no such action to them, and posting it anyway does nothing
    listing = client.get(reverse("admin:dbops_backuprecord_changelist")).content.decode()
    assert 'value="verify_restore_test"' not in listing
    client.post(
        reverse("admin:dbops_backuprecord_changelist"),
        {"action": "verify_restore_test", "_selected_action": [backup_record.pk]},
    )
    # staff without any dbops permission get 403 on the list itself
    outsider = django_user_model.objects.create_user("outsider", "o@example.com", "pw-outsider-123", is_staff=True)
    client.force_login(outsider)
    assert client.post(verify_url).status_code == 403
    response = client.post(
        reverse("admin:dbops_backuprecord_changelist"),
        {"action": "verify_restore_test", "_selected_action": [backup_record.pk]},
    )
    assert response.status_code == 403
    assert not TaskRun.objects.exists()
    backup_record.refresh_from_db()
    assert backup_record.verification_status == "never" and backup_record.verified_at is None


def test_restore_through_the_confirmation_page_brings_the_data_back(
    superuser, backup_dir, s3_bucket, drop_pre_restore_databases, celery_in_process
):
    # s3_bucket: a bucket of our own, so the catalog re-sync after the restore sees only our backups
    from dbops.services.backups.create import backup_create
    from multipult.core.models import Role

    Role.objects.create(name="before-backup")
    backup_record = backup_create(tag="admin-restore")  # superuser exists, its session not yet
    Role.objects.create(name="after-backup")
    Role.objects.filter(name="before-backup").delete()
    client = Client()
    client.force_login(superuser)
    database_name = connection.settings_dict["NAME"]

    response = client.post(
        reverse("admin:dbops_backuprecord_restore", args=[backup_record.pk]), {"typed_name": database_name}
    )

    assert response.status_code == 302
    connection.close()  # the restore swapped the database under our session
    assert sorted(Role.objects.values_list("name", flat=True)) == ["before-backup"]
    safety = BackupRecord.objects.get(kind=BackupRecord.Kind.SAFETY)
    assert (safety.triggered_by, safety.triggered_by_user) == ("restore", "root")
    # the operator stays signed in (their account is in the backup) and reads the outcome
    outcome_page = client.get(response["Location"]).content.decode()
    assert f"Safety backup #{safety.pk} holds the data as it was before." in outcome_page
    # and the record's page keeps the restore in its history
    assert re.search(rf"<td>root \(admin\)</td><td>{database_name}</td><td>#{safety.pk}</td>", outcome_page)


def test_restore_to_a_time_before_the_operator_existed_ends_the_session_cleanly(
    django_user_model, backup_dir, s3_bucket, drop_pre_restore_databases, celery_in_process
):
    from dbops.services.backups.create import backup_create

    backup_record = backup_create(tag="before-the-operator")
    newcomer = django_user_model.objects.create_superuser("newcomer", "n@example.com", "pw-newcomer-123")
    client = Client()
    client.force_login(newcomer)

    response = client.post(
        reverse("admin:dbops_backuprecord_restore", args=[backup_record.pk]),
        {"typed_name": connection.settings_dict["NAME"]},
    )

    assert response.status_code == 302
    connection.close()
    assert not django_user_model.objects.filter(username="newcomer").exists()
    assert "/admin/login/" in client.get(response["Location"])["Location"]
