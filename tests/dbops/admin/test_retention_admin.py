"""RetentionPolicy admin: the "Preview" action shows the keep/delete list and deletes nothing."""

from __future__ import annotations

import re
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


def test_database_alias_is_a_choice_of_configured_aliases(superuser):
    client = Client()
    client.force_login(superuser)
    form = {"name": "nightly", "enabled": "on", "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12, "kind": "full"}

    refused = client.post(reverse("admin:dbops_retentionpolicy_add"), {**form, "database_alias": "defualt"})
    accepted = client.post(reverse("admin:dbops_retentionpolicy_add"), {**form, "database_alias": "default"})

    assert refused.status_code == 200 and "Select a valid choice. defualt is not one" in refused.content.decode()
    assert accepted.status_code == 302
    assert list(RetentionPolicy.objects.values_list("name", "database_alias")) == [("nightly", "default")]
    choices = [value for value, _ in refused.context["adminform"].form.fields["database_alias"].choices]
    assert choices[:2] == ["", "default"] and "dbops" not in choices  # never the operations database


def test_preview_shows_each_backups_kind_and_why_kinds_are_counted_apart(superuser):
    now = timezone.now()
    make_backup_record(started_at=now - timedelta(hours=3), kind=BackupRecord.Kind.FULL)
    make_backup_record(started_at=now - timedelta(hours=1), kind=BackupRecord.Kind.SAFETY)
    policy = RetentionPolicy.objects.create(name="any-kind", kind="", keep_daily=1, keep_weekly=0, keep_monthly=0)
    client = Client()
    client.force_login(superuser)

    html = client.post(
        reverse("admin:dbops_retentionpolicy_changelist"),
        {"action": "preview_retention", "_selected_action": [policy.pk]},
    ).content.decode()

    assert re.findall(r'<td class="kind">(\w+)</td>', html) == ["full", "safety"]
    assert "counted apart" in html
