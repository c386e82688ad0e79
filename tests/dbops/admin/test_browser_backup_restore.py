"""The whole story in headless Chromium: a superuser takes a backup from the admin, the data
changes, they restore the backup through the typed confirmation page and see the data back."""

from __future__ import annotations

import re

import pytest
from django.db import connection

from dbops.models import BackupRecord
from multipult.core.models import Role
from tests.dbops.admin.conftest import admin_login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def role_names_in_the_admin(page, live_server) -> list[str]:
    page.goto(f"{live_server.url}/admin/core/role/")
    return sorted(page.locator("#result_list tbody th a").all_inner_texts())


def test_backup_change_data_restore_and_see_it_back(
    page, live_server, superuser, backup_dir, s3_bucket, celery_in_process, drop_pre_restore_databases
):
    Role.objects.create(name="editor")
    admin_login(page, live_server, superuser)

    # a backup from the admin's button; in-process it has finished when the list comes back
    page.goto(f"{live_server.url}/admin/dbops/backuprecord/")
    page.click("#backup-now")
    assert "Backup finished" in page.locator("ul.messagelist").inner_text()
    first_row = page.locator("#result_list tbody tr").first
    assert first_row.locator(".backup-status").inner_text() == "Succeeded"
    backup_record = BackupRecord.objects.get()
    assert backup_record.triggered_by_user == "root"

    # the data changes after the backup
    Role.objects.filter(name="editor").delete()
    Role.objects.create(name="added-after-the-backup")
    assert role_names_in_the_admin(page, live_server) == ["added-after-the-backup"]

    # restore through the confirmation page
    page.goto(f"{live_server.url}/admin/dbops/backuprecord/{backup_record.pk}/change/")
    page.click("#restore-link")
    database_name = page.locator("#target-name").inner_text()
    assert database_name == connection.settings_dict["NAME"]
    assert "safety backup" in page.locator("#safety-backup").inner_text()
    page.fill("#id_typed_name", database_name)
    screenshot(page, "restore-confirmation-filled")
    page.click("#confirm-submit")

    # the outcome is reported, the operator is still signed in, and the data is back
    outcome = page.locator("ul.messagelist").inner_text()
    assert re.search(rf"Restored backup #{backup_record.pk} .* into database {database_name}", outcome)
    assert "Safety backup #" in outcome
    assert role_names_in_the_admin(page, live_server) == ["editor"]
    connection.close()  # our own session ended with the swap
    assert BackupRecord.objects.filter(kind=BackupRecord.Kind.SAFETY, status="succeeded").count() == 1
    screenshot(page, "after-restore")
