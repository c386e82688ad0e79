"""RetentionPolicy admin: the "Preview" action shows the keep/delete list and deletes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dbops.models import BackupRecord, RetentionPolicy
from tests.dbops.admin.conftest import make_backup_record

pytestmark = pytest.mark.django_db


def test_preview_lists_keep_and_delete_and_changes_nothing(superuser):
    now = timezone.now()
    oldest, middle, newest = (make_backup_record(started_at=now - timedelta(days=days)) for days in (3, 2, 1))
    policy = RetentionPolicy.objects.create(name="last-one", keep_daily=0, keep_weekly=0, keep_monthly=0, keep_last=1)
    client = Client()
    client.force_login(superuser)
    before = list(BackupRecord.objects.order_by("pk").values_list("pk", "status", "deleted_at"))

    response = client.post(
        reverse("admin:dbops_retentionpolicy_changelist"),
        {"action": "preview_retention", "_selected_action": [policy.pk]},
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "last-one: keep 1, delete 2" in html
    assert html.count('<tr class="delete">') == 2 and html.count('<tr class="keep">') == 1
    rows = {pk: action for pk, action in _plan_rows(response)}
    assert rows == {oldest.pk: "delete", middle.pk: "delete", newest.pk: "keep"}
    assert list(BackupRecord.objects.order_by("pk").values_list("pk", "status", "deleted_at")) == before
    policy.refresh_from_db()
    assert policy.last_run_at is None  # a preview is not a run


def _plan_rows(response):
    for decision in response.context["plans"][0].decisions:
        yield decision.backup.pk, decision.action


def test_preview_needs_view_permission(django_user_model):
    policy = RetentionPolicy.objects.create(name="p")
    staff = django_user_model.objects.create_user("nobody", password="x" * 12, is_staff=True)
    client = Client()
    client.force_login(staff)

    response = client.post(
        reverse("admin:dbops_retentionpolicy_changelist"),
        {"action": "preview_retention", "_selected_action": [policy.pk]},
    )

    assert response.status_code == 403
