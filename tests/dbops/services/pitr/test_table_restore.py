"""`pitr restore-table` on a real throwaway cluster: one table's rows as of a moment, replayed from the
base backup and WAL in a scratch server, replace the live rows (other tables untouched) or go into a new
table; refused without --confirm, for a moment before every base backup, or a table that did not exist."""

from __future__ import annotations

import pytest

from dbops.models import RestoreRecord
from dbops.services.pitr.recovery import pitr_base_backup_create
from tests.commands import command_error, run_command
from tests.dbops.services.pitr.cluster import (  # noqa: F401  (pitr_clusters: fixture)
    a_moment_between,
    database_alias,
    pitr_clusters,
    switch_wal_and_wait,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_one_table_comes_back_as_of_a_moment_in_place_or_into_a_new_table(pitr_clusters, monkeypatch, settings):  # noqa: F811
    source = pitr_clusters.archiving_source()
    source.query("CREATE TABLE item (id int PRIMARY KEY, batch text NOT NULL)")
    source.query("CREATE TABLE other (id int PRIMARY KEY)")
    with database_alias("pitr_source", source.port) as alias:
        base = pitr_base_backup_create(using=alias)
        source.query("INSERT INTO item SELECT i, 'a' FROM generate_series(1, 20) i")
        moment = a_moment_between(source)
        # After the moment: a bad update of item, and other work that must stay
        source.query("UPDATE item SET batch = 'wrong' WHERE id <= 10")
        source.query("DELETE FROM item WHERE id > 15")
        source.query("INSERT INTO other SELECT generate_series(1, 5)")
        source.query("CREATE TABLE later (id int)")
        switch_wal_and_wait(source)
        pitr_clusters.lend_environment(monkeypatch, settings)
        restore_table = ["pitr", "restore-table", "--database", alias, "--target-time", moment]

        # Without --confirm, or for a table that did not exist then: refused, nothing written
        assert command_error(*restore_table, "item").startswith("--confirm: This writes the rows item had at")
        assert "Table ghost does not exist in database" in command_error(
            *restore_table, "ghost", "--into", "g", "--confirm"
        )
        # A table that exists now but not at the moment: the replay finds no such table, nothing written
        assert "Table later did not exist at" in command_error(*restore_table, "later", "--into", "g", "--confirm")
        assert source.query("SELECT count(*) FROM item WHERE batch = 'wrong'") == [(10,)]
        assert source.query("SELECT to_regclass('g') IS NULL") == [(True,)]
        # Refused before planning (no confirm, no such live table): no record; failed in the replay: one
        [failed] = RestoreRecord.objects.filter(source__startswith="PITR:")
        assert (failed.status, failed.tables, failed.backup_id) == (RestoreRecord.Status.FAILED, ["g"], base.pk)
        assert "Table later did not exist at" in failed.error and failed.source.endswith(" into g")
        # A moment before every base backup: refused
        assert "No PITR base backup finished before" in command_error(
            "pitr", "restore-table", "item", "--database", alias, "--target-time", "2000-01-01 00:00:00+00", "--confirm"
        )

        output = run_command(*restore_table, "item", "--into", "item_then", "--confirm")
        assert "Table item_then now holds the 20 rows item had at" in output
        assert source.query("SELECT id, batch FROM item_then ORDER BY id") == [(i, "a") for i in range(1, 21)]
        assert source.query("SELECT count(*) FROM item WHERE batch = 'wrong'") == [(10,)]  # untouched
        # An existing table as --into: refused, both tables as they were
        assert "Table other already exists" in command_error(*restore_table, "item", "--into", "other", "--confirm")

        output = run_command(*restore_table, "item", "--confirm")
        assert source.query("SELECT id, batch FROM item ORDER BY id") == [(i, "a") for i in range(1, 21)]
        assert source.query("SELECT count(*) FROM other") == [(5,)]  # the rest of the database stays
        # Each restore is in the restore history, as a backup restore is
        records = list(RestoreRecord.objects.filter(source__startswith="PITR:").order_by("pk"))
        assert [(r.status, r.tables, r.backup_id, r.triggered_by) for r in records[1:]] == [
            (RestoreRecord.Status.SUCCEEDED, ["item_then"], base.pk, "cli"),
            (RestoreRecord.Status.SUCCEEDED, ["item"], base.pk, "cli"),
        ]
        assert f"restore record #{records[-1].pk})" in output and records[-1].finished_at is not None


# Transactional: the admin queues the task when the request's transaction commits, as in production.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pitr_clusters", ["local"], indirect=True)  # both storages: the test above
def test_the_admin_page_shows_the_plan_and_restores_only_after_the_typed_table_name(
    pitr_clusters,  # noqa: F811
    monkeypatch,
    settings,
    django_user_model,
):
    from django.contrib.auth.models import Permission
    from django.test import Client
    from django.urls import reverse

    from dbops.models import TaskRun
    from multipult.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)  # the task runs in the request, as without Redis
    source = pitr_clusters.archiving_source()
    source.query("CREATE TABLE item (id int PRIMARY KEY, batch text NOT NULL)")
    with database_alias("pitr_admin", source.port) as alias:
        base = pitr_base_backup_create(using=alias)
        source.query("INSERT INTO item SELECT i, 'a' FROM generate_series(1, 8) i")
        moment = a_moment_between(source)
        source.query("UPDATE item SET batch = 'wrong'")
        switch_wal_and_wait(source)
        pitr_clusters.lend_environment(monkeypatch, settings)
        url = reverse("admin:dbops_backuprecord_table_restore")
        fields = {"database": alias, "table": "item", "target_time": moment, "into": ""}

        # Staff without the restore permission: no page, nothing written
        clerk = django_user_model.objects.create_user("clerk", "c@example.com", "pw-clerk-12345", is_staff=True)
        clerk.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
        staff = Client()
        staff.force_login(clerk)
        assert staff.get(url).status_code == 403
        assert staff.post(url, {**fields, "typed_name": "item"}).status_code == 403

        admin = Client()
        admin.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw-root-123456"))
        assert 'id="table-restore-link"' in admin.get(reverse("admin:dbops_backuprecord_changelist")).content.decode()
        page = admin.get(url).content.decode()
        assert f"(base backup #{base.pk})" in page and 'id="overwritten"' not in page

        # First submit: the checked plan and the typed-name field, nothing written yet
        page = admin.post(url, fields).content.decode()
        assert 'id="rows-replaced">8<' in page and f"base backup #{base.pk}" in page
        assert 'name="typed_name"' in page
        # A wrong name: refused, the plan shown again
        page = admin.post(url, {**fields, "typed_name": "items"}).content.decode()
        assert "That is not the table that is written. Type item exactly" in page
        # A table the live database does not have: the reason, no plan
        page = admin.post(url, {**fields, "table": "ghost", "typed_name": "ghost"}).content.decode()
        assert "Table ghost does not exist in database" in page and 'id="overwritten"' not in page
        assert source.query("SELECT count(*) FROM item WHERE batch = 'wrong'") == [(8,)]
        assert not TaskRun.objects.filter(task_name="pitr_restore_table").exists()

        response = admin.post(url, {**fields, "typed_name": "item"})
        assert response.status_code == 302
        assert source.query("SELECT id, batch FROM item ORDER BY id") == [(i, "a") for i in range(1, 9)]
        task_run = TaskRun.objects.get(task_name="pitr_restore_table")
        assert task_run.status == TaskRun.Status.SUCCEEDED and task_run.result["rows"] == 8
        assert task_run.arguments["requested_by"] == "root"
        restore_record = RestoreRecord.objects.get(pk=task_run.result["restore_record_id"])
        assert (restore_record.status, restore_record.tables, restore_record.backup_id) == (
            "succeeded",
            ["item"],
            base.pk,
        )
        assert (restore_record.triggered_by, restore_record.triggered_by_user) == ("admin", "root")
        message = admin.get(response["Location"]).content.decode()
        assert "8 rows written from base backup" in message
