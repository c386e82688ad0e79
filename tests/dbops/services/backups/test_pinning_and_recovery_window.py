"""Pinned backups (never deleted until unpinned: retention keeps them, backup_delete refuses them, the
admin shows and sets them) on real pg_dump artifacts; and retention by recovery window over PITR base
backups: the newest base backup finished before the window opens and every one after it are kept, and
`apply_retention --dry-run` says which window that guarantees."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dbops.exceptions import BackupError, RetentionError
from dbops.models import BackupRecord, RetentionPolicy
from dbops.services.backups.create import backup_create, backup_delete
from dbops.services.backups.retention import retention_plan
from tests.commands import command_error, run_command
from tests.dbops.admin.conftest import staff_user, superuser  # noqa: F401  (fixtures)

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


def backups_aged(days_ago: list[float]) -> list[BackupRecord]:
    records = []
    for days in days_ago:
        backup_record = backup_create(compression="zstd")
        BackupRecord.objects.filter(pk=backup_record.pk).update(started_at=timezone.now() - dt.timedelta(days=days))
        backup_record.refresh_from_db()
        records.append(backup_record)
    return records


@pytest.mark.django_db(transaction=True)
def test_a_pinned_backup_survives_a_daily_0_run_until_unpinned(backup_dir):
    fresh, middle, pinned = backups_aged([0, 3, 9])
    assert run_command("pin_backup", str(pinned.pk)) == (
        f"Backup #{pinned.pk} pinned: retention keeps it until it is unpinned.\n"
    )
    # --daily 0 alone keeps nothing: refused before anything is deleted
    assert "keeps nothing" in command_error("apply_retention", "--daily", "0")
    assert set(BackupRecord.objects.values_list("status", flat=True)) == {"succeeded"}
    # with the newest kept, the pinned one stays and says why; only the middle one goes
    output = run_command("apply_retention", "--daily", "0", "--keep-last", "1")
    assert f"#{pinned.pk:<6}" in output and "pinned" in output
    statuses = dict(BackupRecord.objects.values_list("pk", "status"))
    assert statuses == {fresh.pk: "succeeded", middle.pk: "deleted", pinned.pk: "succeeded"}
    assert Path(pinned.location).is_file() and not Path(middle.location).exists()
    # nothing else deletes it either, until it is unpinned
    pinned.refresh_from_db()
    with pytest.raises(BackupError, match=f"Backup #{pinned.pk} is pinned: unpin it before deleting it."):
        backup_delete(backup_record=pinned, reason="test")
    assert Path(pinned.location).is_file()
    run_command("pin_backup", str(pinned.pk), "--unpin")
    run_command("apply_retention", "--daily", "0", "--keep-last", "1")
    assert BackupRecord.objects.get(pk=pinned.pk).status == "deleted"


@pytest.mark.django_db
def test_pinning_refuses_what_is_not_there(backup_dir):
    assert command_error("pin_backup", "999") == "No backup with id '999' (see list_backups)."
    gone = BackupRecord.objects.create(kind="full", status="deleted", started_at=timezone.now())
    assert command_error("pin_backup", str(gone.pk)) == f"Backup #{gone.pk} is deleted: there is nothing left to pin."


@pytest.mark.django_db
def test_the_admin_shows_pins_and_unpins(superuser, staff_user):  # noqa: F811
    backup_record = BackupRecord.objects.create(kind="full", status="succeeded", started_at=timezone.now())
    client = Client()
    client.force_login(superuser)
    changelist = reverse("admin:dbops_backuprecord_changelist")
    client.post(changelist, {"action": "pin_selected", "_selected_action": [backup_record.pk]})
    backup_record.refresh_from_db()
    assert backup_record.pinned
    assert "column-pinned" in client.get(changelist).content.decode()
    # staff who may only view backups are not offered the action, and a forged post changes nothing
    viewer = Client()
    viewer.force_login(staff_user)
    assert "unpin_selected" not in viewer.get(changelist).content.decode()
    viewer.post(changelist, {"action": "unpin_selected", "_selected_action": [backup_record.pk]})
    backup_record.refresh_from_db()
    assert backup_record.pinned
    client.post(changelist, {"action": "unpin_selected", "_selected_action": [backup_record.pk]})
    backup_record.refresh_from_db()
    assert not backup_record.pinned


def base_backups(finished_days_ago: list[float]) -> list[BackupRecord]:
    records = []
    for pk, days in enumerate(finished_days_ago, start=1):
        finished = NOW - dt.timedelta(days=days)
        records.append(
            BackupRecord(
                pk=pk,
                kind="base",
                status="succeeded",
                started_at=finished - dt.timedelta(minutes=5),
                finished_at=finished,
                database_alias="default",
            )
        )
    return records


def window_policy(days: int, **counts) -> RetentionPolicy:
    counts = {"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0, **counts}
    return RetentionPolicy(name="window", kind="base", recovery_window_days=days, **counts)


def test_the_window_keeps_the_base_backup_before_it_opens_and_every_one_after():
    backups = base_backups([1, 5, 10, 16, 20, 30])
    plan = retention_plan(backups=backups, policy=window_policy(14), now=NOW)
    assert sorted(d.backup.pk for d in plan.keep) == [1, 2, 3, 4]  # 16 days ago: the anchor of the window
    assert sorted(d.backup.pk for d in plan.delete) == [5, 6]
    (window,) = plan.windows
    assert window.complete and window.guaranteed_from == NOW - dt.timedelta(days=14) and window.base_backups == 4
    assert "guaranteed by 4 base backup(s)" in window.summary


def test_a_window_older_than_every_base_backup_is_only_partly_guaranteed():
    backups = base_backups([2, 6])
    plan = retention_plan(backups=backups, policy=window_policy(14), now=NOW)
    assert plan.delete == [] and not plan.windows[0].complete
    assert plan.windows[0].guaranteed_from == NOW - dt.timedelta(days=6)
    assert "only from 2026-06-09 12:00" in plan.windows[0].summary


def test_the_window_and_the_counts_add_up():
    backups = base_backups([1, 5, 10, 16, 20, 30])
    plan = retention_plan(backups=backups, policy=window_policy(3, keep_monthly=2), now=NOW)
    # window 3 days: 1 and 5 days ago (the anchor); monthly: the newest of June (1) and of May (16 days ago)
    assert sorted(d.backup.pk for d in plan.keep) == [1, 2, 4]


def test_a_window_on_a_policy_of_logical_dumps_is_refused():
    with pytest.raises(RetentionError, match="A recovery window keeps PITR base backups"):
        retention_plan(backups=[], policy=RetentionPolicy(name="x", kind="full", recovery_window_days=7), now=NOW)


@pytest.mark.django_db
def test_dry_run_shows_the_window_it_guarantees(backup_dir, settings):
    settings.PITR_STORAGE = "local"
    now = timezone.now()
    for days in (2, 20):
        BackupRecord.objects.create(
            kind="base",
            status="succeeded",
            started_at=now - dt.timedelta(days=days, minutes=5),
            finished_at=now - dt.timedelta(days=days),
        )
    output = run_command("apply_retention", "--recovery-window", "14", "--dry-run")
    assert "Recovery window of default (14 days, from " in output and ": guaranteed by 2 base backup(s)" in output
    assert "Dry run: nothing was deleted." in output
    assert command_error("apply_retention", "--recovery-window", "0") == (
        "--recovery-window: A recovery window is at least 1 day."
    )
