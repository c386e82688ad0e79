"""Pruning old rollback snapshots on the real PostgreSQL: copy tables really dropped (pg_tables), kept
snapshots intact and still rollback-able, dry run changes nothing, a snapshot under rollback is skipped,
bad input is one line and a non-zero exit."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time

import psycopg2
import pytest
from django.db import connection, connections
from django.utils import timezone

from dbops.conf import operations_alias
from dbops.engines import get_connector
from dbops.exceptions import SnapshotError
from dbops.models import Snapshot
from dbops.services.datamigration.snapshots import (
    COPY_PREFIX,
    snapshot_create,
    snapshot_prune,
    snapshot_rollback,
)
from multipult.core.models import Role
from tests.commands import command_error, run_command
from tests.dbops.commandline import child_database_env, run_manage
from tests.dbops.services.datamigration.helpers import seed

pytestmark = pytest.mark.django_db


def copy_tables() -> set[str]:
    """Every snapshot copy table in the operations database (where the copies live), from its catalog."""
    with connections[operations_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND starts_with(tablename, %s)",
            [COPY_PREFIX],
        )
        return {row[0] for row in cursor.fetchall()}


def aged(snapshot: Snapshot, days: float) -> Snapshot:
    Snapshot.objects.filter(pk=snapshot.pk).update(created_at=timezone.now() - dt.timedelta(days=days))
    snapshot.refresh_from_db()
    return snapshot


@pytest.fixture
def snapshots():
    """Four role snapshots taken 90, 60, 40 and 1 days ago (oldest first)."""
    seed(scale=0.1)
    taken = []
    for days in (90, 60, 40, 1):
        Role.objects.create(name=f"role-before-{days}")
        taken.append(aged(snapshot_create(entities="roles", reason=f"{days} days"), days))
    return taken


def state() -> tuple:
    return (
        sorted(Snapshot.objects.values_list("id", "status", "copies")),
        copy_tables(),
        get_connector().table_checksum("core_role", "id"),
    )


def test_old_snapshots_are_dropped_and_the_rest_stay_rollbackable(snapshots):
    oldest, older, old, recent = snapshots
    assert {*oldest.copies.values(), *recent.copies.values()} <= copy_tables()

    result = snapshot_prune(older_than_days=30, keep_last=2)

    assert [pruned.id for pruned in result.pruned] == [oldest.id, older.id]
    assert result.kept == 2 and result.freed_bytes == oldest.size_bytes + older.size_bytes > 0
    remaining = copy_tables()
    assert not set(oldest.copies.values()) & remaining and not set(older.copies.values()) & remaining
    assert set(old.copies.values()) | set(recent.copies.values()) <= remaining
    assert set(Snapshot.objects.values_list("id", flat=True)) == {old.id, recent.id}
    # A kept snapshot, older than the cut-off but among the newest 2, still restores exactly.
    Role.objects.create(name="after every snapshot")
    rollback = snapshot_rollback(snapshot_id=old.id)
    assert rollback.checksums_after["core_role"] == old.checksums["core_role"]
    assert not Role.objects.filter(name__in=["after every snapshot", "role-before-1"]).exists()


def test_snapshots_younger_than_the_cutoff_are_never_pruned(snapshots):
    result = snapshot_prune(older_than_days=100)
    assert result.pruned == [] and result.kept == 4 and len(copy_tables()) == 4
    result = snapshot_prune(older_than_days=45)  # keep_last 0: only age counts
    assert [pruned.id for pruned in result.pruned] == [snapshots[0].id, snapshots[1].id]
    assert Snapshot.objects.count() == 2


def test_dry_run_lists_the_same_snapshots_and_changes_nothing(snapshots):
    before = state()
    dry = snapshot_prune(older_than_days=30, keep_last=1, dry_run=True)
    assert [pruned.id for pruned in dry.pruned] == [snapshot.id for snapshot in snapshots[:3]]
    assert state() == before
    real = snapshot_prune(older_than_days=30, keep_last=1)
    assert [pruned.id for pruned in real.pruned] == [pruned.id for pruned in dry.pruned]
    assert copy_tables() == set(snapshots[3].copies.values())


def test_copies_already_gone_and_rolled_back_snapshots_are_pruned_too(snapshots):
    oldest = snapshots[0]
    snapshot_rollback(snapshot_id=snapshots[1].id)
    with connections[operations_alias()].cursor() as cursor:
        cursor.execute(f"DROP TABLE {next(iter(oldest.copies.values()))}")
    result = snapshot_prune(older_than_days=50)
    assert [(pruned.id, pruned.status) for pruned in result.pruned] == [
        (oldest.id, "available"),
        (snapshots[1].id, "rolled_back"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"older_than_days": -1}, "^The age in days must be 0 or more"),
        ({"older_than_days": 30, "keep_last": -2}, "^The number of newest snapshots to keep must be 0 or more"),
        ({"older_than_days": "30"}, "whole number"),
    ],
)
def test_service_refuses_bad_numbers_and_changes_nothing(snapshots, kwargs, message):
    before = state()
    with pytest.raises(SnapshotError, match=message):
        snapshot_prune(**kwargs)
    assert state() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--older-than DAYS"),
        (["--older-than", "-5"], "--older-than: The age in days must be 0 or more, got -5."),
        (["--older-than", "ten"], "--older-than must be a whole number of days, got 'ten'."),
        (
            ["--older-than", "30", "--keep-last", "-1"],
            "--keep-last: The number of newest snapshots to keep must be 0 or more, got -1.",
        ),
        (["--older-than", "30", "--keep-last", "x"], "--keep-last must be a whole number of snapshots"),
    ],
)
def test_command_refuses_bad_input_with_one_message(snapshots, args, message):
    before = state()
    command_error("prune_snapshots", *args, match=re.escape(message))
    assert state() == before


def test_command_json_and_text_output(snapshots):
    text = run_command("prune_snapshots", "--older-than", "30", "--keep-last", "1", "--dry-run")
    assert text.count("would prune  ") == 3 and "Dry run: nothing changed." in text
    document = json.loads(run_command("prune_snapshots", "--older-than", "50", "--json"))
    assert [entry["id"] for entry in document["pruned"]] == [snapshots[0].id, snapshots[1].id]
    assert document["dry_run"] is False and document["kept"] == 2 and document["skipped_in_rollback"] == []
    assert set(document["pruned"][0]["tables"]) == set(snapshots[0].copies.values())
    assert len(copy_tables()) == 2


@pytest.mark.django_db(transaction=True)
def test_a_snapshot_whose_rollback_is_in_progress_is_skipped():
    seed(scale=0.1)
    snapshot = aged(snapshot_create(entities="roles"), 90)
    Role.objects.create(name="made after the snapshot")
    # Another session holds core_role, so the rollback starts (locking its snapshot) and then waits.
    settings_dict = connection.settings_dict
    blocker = psycopg2.connect(
        host=settings_dict["HOST"],
        port=settings_dict["PORT"],
        dbname=settings_dict["NAME"],
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"],
    )
    blocker_cursor = blocker.cursor()
    blocker_cursor.execute("LOCK TABLE core_role IN ACCESS EXCLUSIVE MODE")
    outcome = {}

    def rollback():
        try:
            outcome["result"] = snapshot_rollback(snapshot_id=snapshot.id)
        except BaseException as exc:  # noqa: BLE001 (reported to the main thread)
            outcome["error"] = exc
        finally:
            connections.close_all()

    worker = threading.Thread(target=rollback, daemon=True)
    worker.start()
    try:
        for _ in range(600):  # until the rollback holds the snapshot row and waits for core_role
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE %s",
                    ["%core_role%"],
                )
                if cursor.fetchone()[0]:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the rollback never started")
        result = snapshot_prune(older_than_days=30)
        assert result.pruned == [] and result.skipped_in_rollback == [snapshot.id]
    finally:
        blocker.rollback()
        blocker.close()
        worker.join(120)
    assert "error" not in outcome, outcome
    assert outcome["result"].checksums_after["core_role"] == snapshot.checksums["core_role"]
    assert set(snapshot.copies.values()) <= copy_tables()
    # Once the rollback is over, the snapshot can go.
    assert [pruned.id for pruned in snapshot_prune(older_than_days=30).pruned] == [snapshot.id]
    assert copy_tables() == set()


@pytest.mark.django_db(transaction=True)
def test_exit_codes_and_one_line_messages_from_the_shell():
    seed(scale=0.1)
    snapshot = aged(snapshot_create(entities="roles"), 40)

    def manage(*args):
        return run_manage("prune_snapshots", *args, env={**child_database_env()})

    for args in ([], ["--older-than", "-1"], ["--older-than", "30", "--keep-last", "-3"]):
        refused = manage(*args)
        assert refused.returncode != 0, args
        assert len(refused.stderr.strip().splitlines()) == 1 and refused.stderr.startswith("CommandError: "), args
    assert Snapshot.objects.filter(pk=snapshot.pk).exists() and set(snapshot.copies.values()) <= copy_tables()
    ok = manage("--older-than", "30")
    assert ok.returncode == 0 and snapshot.id in ok.stdout, ok.stderr
    assert not Snapshot.objects.filter(pk=snapshot.pk).exists() and copy_tables() == set()
    assert manage("--help").returncode == 0


def test_the_scheduled_task_prunes_with_the_conservative_default_and_records_its_run(snapshots):
    from dbops import tasks
    from dbops.models import TaskRun

    run_command("setup_schedules")
    from django_celery_beat.models import PeriodicTask

    schedule = PeriodicTask.objects.get(name="dbops: prune old snapshots")
    assert schedule.task == "dbops.tasks.prune_snapshots" and schedule.enabled
    kwargs = json.loads(schedule.kwargs)
    assert kwargs == {"older_than_days": 30, "keep_last": 3}
    result = tasks.prune_snapshots.apply(kwargs=kwargs, task_id="prune-1").get()
    # 90, 60 and 40 days old are past 30 days, but the 3 newest stay: only the 90-day one goes.
    assert result["pruned"] == [snapshots[0].id] and result["kept"] == 3
    assert TaskRun.objects.get(task_id="prune-1").status == TaskRun.Status.SUCCEEDED
    assert copy_tables() == {table for snapshot in snapshots[1:] for table in snapshot.copies.values()}
