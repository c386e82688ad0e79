"""Admin pages in headless Chromium that only read the catalog: the restore confirmation (with the
typed-name check), the 403 for staff without the permission, and the dashboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from dbops.models import BackupRecord
from tests.dbops.admin.conftest import admin_login, make_backup_record, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_without_permission_cannot_reach_the_restore_page(page, live_server, staff_user):
    backup_record = make_backup_record()
    admin_login(page, live_server, staff_user)

    # no way to it from the record's page...
    page.goto(f"{live_server.url}/admin/dbops/backuprecord/{backup_record.pk}/change/")
    assert page.locator("#restore-link").count() == 0
    # ...and the address itself answers 403
    response = page.goto(f"{live_server.url}/admin/dbops/backuprecord/{backup_record.pk}/restore/")
    assert response.status == 403
    assert "403" in page.content()


def test_confirmation_page_refuses_a_wrong_name(page, live_server, superuser):
    backup_record = make_backup_record(tag="nightly")
    database_name = connection.settings_dict["NAME"]
    admin_login(page, live_server, superuser)

    # given the record's page, when the superuser follows "Restore from this backup…"
    page.goto(f"{live_server.url}/admin/dbops/backuprecord/{backup_record.pk}/change/")
    page.click("#restore-link")

    # then the page says what is overwritten and that a safety backup comes first
    assert page.locator("#target-name").inner_text() == database_name
    assert page.locator("#target-engine").inner_text() == "postgresql"
    assert "safety backup" in page.locator("#safety-backup").inner_text()
    screenshot(page, "restore-confirmation")

    # a wrong name is refused and nothing runs
    page.fill("#id_typed_name", database_name + "x")
    page.click("#confirm-submit")
    assert "That is not the database name." in page.locator(".errorlist").inner_text()
    assert BackupRecord.objects.count() == 1


def test_dashboard_renders_charts_offline(page, live_server, superuser):
    now = timezone.now()
    for days_ago in range(0, 60, 4):
        make_backup_record(
            started_at=now - timedelta(days=days_ago, hours=1),
            size_bytes=(60 - days_ago) * 40_000,
            duration_seconds=1 + days_ago / 10,
        )
    make_backup_record(started_at=now - timedelta(days=9), status=BackupRecord.Status.FAILED, size_bytes=None)
    external_requests = []

    def record_external(request) -> None:
        if not request.url.startswith(live_server.url):
            external_requests.append(request.url)

    page.on("request", record_external)
    admin_login(page, live_server, superuser)

    page.click("#dbops-dashboard-link a")

    assert page.locator("#size-chart rect.bar").count() == 15
    assert page.locator("#size-chart rect.no-value").count() == 1
    assert page.locator("#size-chart").bounding_box()["height"] > 100
    assert "Succeeded" in page.locator("#last-backup").inner_text()
    screenshot(page, "dashboard")
    assert external_requests == []
