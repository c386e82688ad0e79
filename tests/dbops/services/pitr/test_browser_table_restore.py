"""`pitr restore-table` from the admin in headless Chromium: the form, the checked plan, the typed table
name, and the rows as they were, on a real throwaway cluster with WAL archiving."""

from __future__ import annotations

import pytest

from dbops.services.pitr.recovery import pitr_base_backup_create
from tests.browser import PASSWORD, screenshot
from tests.dbops.admin.conftest import admin_login
from tests.dbops.services.pitr.cluster import (  # noqa: F401  (pitr_clusters: fixture)
    a_moment_between,
    database_alias,
    pitr_clusters,
    switch_wal_and_wait,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("pitr_clusters", ["local"], indirect=True)  # storages: the command's test
def test_a_table_comes_back_through_the_admin(
    page,
    live_server,
    pitr_clusters,  # noqa: F811
    monkeypatch,
    settings,
    django_user_model,
):
    from multipult.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)  # the task runs in the request, as without Redis
    source = pitr_clusters.archiving_source()
    source.query("CREATE TABLE item (id int PRIMARY KEY, batch text NOT NULL)")
    with database_alias("pitr_browser", source.port) as alias:
        pitr_base_backup_create(using=alias)
        source.query("INSERT INTO item SELECT i, 'a' FROM generate_series(1, 6) i")
        moment = a_moment_between(source)
        source.query("DELETE FROM item WHERE id > 2")
        switch_wal_and_wait(source)
        pitr_clusters.lend_environment(monkeypatch, settings)
        admin_login(page, live_server, django_user_model.objects.create_superuser("root", "r@example.com", PASSWORD))

        page.goto(f"{live_server.url}/admin/dbops/backuprecord/")
        page.click("#table-restore-link")
        page.select_option("#id_database", alias)
        page.fill("#id_table", "item")
        page.fill("#id_target_time", moment)
        page.click("#confirm-submit")
        assert "Rows replaced\t2" in page.locator("#overwritten").inner_text()
        assert source.query("SELECT count(*) FROM item") == [(2,)]  # only the plan so far
        page.fill("#id_typed_name", page.locator("#written-table").inner_text())
        screenshot(page, "pitr-table-restore-confirmation")
        page.click("#confirm-submit")

        assert "6 rows written from base backup" in page.locator("ul.messagelist").inner_text()
        assert source.query("SELECT id, batch FROM item ORDER BY id") == [(i, "a") for i in range(1, 7)]
