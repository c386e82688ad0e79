"""The admin as staff see it, in headless Chromium with DEBUG unset, light and dark: screenshots of the
home page, the backup list at 1400 px, a record, the restore page, the import preview and the dashboard
(test-artifacts/), each checked for a loaded stylesheet and the theme it was asked for."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from dbops.models import BackupRecord
from dbops.services.datamigration.exports import export_data
from multipult.core.models import Role
from tests.dbops.admin.conftest import admin_login, make_backup_record, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KEY_COLUMNS = ["status_and_error", "when", "age", "size", "where", "verified"]
ON_SCREEN = """element => { const box = element.getBoundingClientRect(); const x = box.left + box.width / 2;
    const y = box.top + box.height / 2; const hit = document.elementFromPoint(x, y);
    return x < window.innerWidth && hit !== null && element.contains(hit); }"""
# Relative luminance of the page's background: Django's light theme is white, its dark one #121212.
BACKGROUND_LUMINANCE = "(() => { const [r, g, b] = getComputedStyle(document.body).backgroundColor.match(/\\d+/g)"
BACKGROUND_LUMINANCE += ".map(Number); return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255; })()"
STYLESHEET_RULES = """[...document.styleSheets].filter(sheet => sheet.href && sheet.href.includes('/admin/css/base'))
    .map(sheet => sheet.cssRules.length)"""


@pytest.fixture(params=["light", "dark"])
def themed_page(request, chromium_browser):
    """A 1400 px wide page whose system colour scheme is light or dark (Django's admin follows it)."""
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme=request.param)
    context.set_default_timeout(30_000)
    browser_page = context.new_page()
    failed_static = []
    browser_page.on(
        "response",
        lambda response: "/static/" in response.url and response.status >= 400 and failed_static.append(response.url),
    )
    browser_page.scheme, browser_page.failed_static = request.param, failed_static
    yield browser_page
    context.close()


def looks_styled(browser_page, name: str) -> None:
    """The admin's stylesheet loaded (its rules are there, nothing under /static/ failed) and the page
    wears the requested theme; then a screenshot."""
    browser_page.wait_for_load_state("networkidle")
    assert browser_page.failed_static == []
    assert browser_page.evaluate(STYLESHEET_RULES)[0] > 100, "admin/css/base.css did not load"
    header = browser_page.evaluate("getComputedStyle(document.getElementById('header')).backgroundColor")
    assert header not in ("rgba(0, 0, 0, 0)", "transparent")
    luminance = browser_page.evaluate(BACKGROUND_LUMINANCE)
    assert luminance < 0.2 if browser_page.scheme == "dark" else luminance > 0.9, (name, luminance)
    screenshot(browser_page, f"{name}-{browser_page.scheme}")


def test_every_admin_page_is_styled_in_light_and_dark(themed_page, live_server, superuser, tmp_path):
    assert settings.DEBUG is False
    now = timezone.now()
    for days_ago in range(0, 30, 3):
        make_backup_record(
            started_at=now - timedelta(days=days_ago, hours=2),
            finished_at=now - timedelta(days=days_ago, hours=2),
            size_bytes=(40 - days_ago) * 50_000,
            tag="nightly-with-a-tag-longer-than-any-column-should-hold" if days_ago == 3 else "nightly",
        )
    make_backup_record(
        started_at=now - timedelta(days=1), status=BackupRecord.Status.FAILED, size_bytes=None, error="pg_dump: gone"
    )
    record = BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED).latest("started_at")
    admin_login(themed_page, live_server, superuser)

    themed_page.goto(f"{live_server.url}/admin/")
    looks_styled(themed_page, "admin-home")

    themed_page.goto(f"{live_server.url}/admin/dbops/backuprecord/")
    looks_styled(themed_page, "backup-list-1400")
    for column in KEY_COLUMNS:
        # visible, not just laid out: the header's centre is on screen and not clipped by the scrolling list
        header = themed_page.locator(f"#result_list th.column-{column}")
        assert header.evaluate(ON_SCREEN), column
    assert "pg_dump: gone" in themed_page.locator("#result_list").inner_text()

    themed_page.goto(f"{live_server.url}/admin/dbops/backuprecord/{record.pk}/change/")
    looks_styled(themed_page, "backup-record")
    assert themed_page.locator("#restore-link").is_visible() and themed_page.locator("#verify-button").is_visible()

    themed_page.click("#restore-link")
    looks_styled(themed_page, "restore-page")
    assert themed_page.locator("#confirm-submit").is_visible()

    for name in ("reader", "editor"):
        Role.objects.create(name=name)
    export_data(entities="roles", output=tmp_path / "roles.jsonl", fmt="jsonl")
    themed_page.goto(f"{live_server.url}/admin/dbops/datatransferrun/import/")
    themed_page.set_input_files("#id_file", str(tmp_path / "roles.jsonl"))
    themed_page.select_option("#id_format", "jsonl")
    themed_page.select_option("#id_mode", "upsert")
    themed_page.click("#preview-import")
    looks_styled(themed_page, "import-preview")
    assert themed_page.locator("#entity-roles .updated").inner_text() == "2"

    themed_page.goto(f"{live_server.url}{reverse('admin:dbops_dashboard')}")
    looks_styled(themed_page, "dashboard")
    # the charts' text follows the theme: light on dark, dark on light
    tick = themed_page.evaluate(
        "(() => { const [r, g, b] = getComputedStyle(document.querySelector('#size-chart text.tick')).fill"
        ".match(/\\d+/g).map(Number); return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255; })()"
    )
    assert tick > 0.5 if themed_page.scheme == "dark" else tick < 0.5, tick
