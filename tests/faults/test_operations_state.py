"""A restore replaces the application's data, never the operations state beside it: after a full or a
--tables restore every operations table (dbops_*, django-celery-beat's) holds exactly what it held
before, plus the rows of the restore itself, and the task that restored ends `succeeded`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from dbops import tasks
from dbops.conf import operations_alias
from dbops.models import BackupRecord, RestoreRecord, RetentionPolicy, SlowQuery, Snapshot, TaskRun
from dbops.services.backups.create import backup_create
from dbops.services.datamigration.snapshots import snapshot_create, snapshot_prune, snapshot_rollback
from multipult.core.models import Role
from tests.commands import run_command

pytestmark = pytest.mark.django_db(transaction=True)

OPERATIONS_APPS = ("dbops", "django_celery_beat")


def operations_state() -> dict[str, dict]:
    """Every row of every operations table: table -> {primary key: row}."""
    state = {}
    for label in OPERATIONS_APPS:
        for model in apps.get_app_config(label).get_models():
            pk = model._meta.pk.attname
            state[model._meta.db_table] = {row[pk]: row for row in model.objects.order_by("pk").values()}
    return state


def rows_added(before: dict[str, dict], after: dict[str, dict]) -> dict[str, list]:
    """Primary keys of the rows `after` has and `before` had not; fails if a row of `before` changed or vanished."""
    added = {}
    for table, rows in before.items():
        for pk, row in rows.items():
            assert after[table].get(pk) == row, f"{table} row {pk} was changed or removed by the restore"
        new = sorted(set(after[table]) - set(rows))
        if new:
            added[table] = new
    return added


def ops_state_after_the_backup() -> None:
    """Operations state that staff and jobs create after the backup was taken (so a rewind would lose it)."""
    run_command("setup_schedules")
    nightly = PeriodicTask.objects.get(name="dbops: nightly backup")
    nightly.enabled = False
    nightly.crontab = CrontabSchedule.objects.create(minute="7", hour="1")
    nightly.save()
    RetentionPolicy.objects.filter(name="default").update(keep_daily=2)
    RetentionPolicy.objects.create(name="added-after-backup", keep_daily=1)
    now = timezone.now()
    SlowQuery.objects.create(
        fingerprint=uuid.uuid4().hex, statement="SELECT 1", sample_sql="SELECT 1", count=3, total_ms=900.0,
        max_ms=400.0, last_ms=100.0, first_seen=now, last_seen=now,
    )  # fmt: skip
    TaskRun.objects.create(task_id=str(uuid.uuid4()), task_name="run_backup", status="succeeded", started_at=now)
    snapshot_create(entities=["roles"], reason="taken after the backup")


@pytest.fixture
def backup_then_changes(backup_dir, drop_pre_restore_databases):
    Role.objects.create(name="in-the-backup")
    backup_record = backup_create(compression="zstd")
    Role.objects.create(name="after-the-backup")
    ops_state_after_the_backup()
    yield backup_record
    snapshot_prune(older_than_days=0)  # its copy tables are no model's: the test flush leaves them


def test_the_operations_tables_are_not_in_the_application_database():
    snapshot_create(entities=["roles"], reason="its copy tables are operations state too")
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            tables = connections[DEFAULT_DB_ALIAS].introspection.table_names(cursor)
    finally:
        snapshot_prune(older_than_days=0)
    assert operations_alias() != DEFAULT_DB_ALIAS
    assert [t for t in tables if t.startswith(("dbops_", "django_celery_beat_"))] == []
    assert BackupRecord.objects.db == operations_alias()


@pytest.mark.parametrize("tables", [None, ["core_role"]], ids=["full", "tables"])
def test_a_restore_task_leaves_every_operations_table_as_it_was_plus_its_own_rows(backup_then_changes, tables):
    backup_record = backup_then_changes
    before = operations_state()

    task_id = str(uuid.uuid4())
    outcome = tasks.restore_backup.apply(
        kwargs={"backup_id": backup_record.pk, "tables": tables, "requested_by": "ops-test"}, task_id=task_id
    ).get()

    # The data went back to the backup's time...
    assert set(Role.objects.values_list("name", flat=True)) == {"in-the-backup"}
    # ...and the operations state did not: every row is still there, unchanged.
    added = rows_added(before, operations_state())
    task_run = TaskRun.objects.get(task_id=task_id)
    assert task_run.status == TaskRun.Status.SUCCEEDED and task_run.finished_at is not None
    assert outcome["safety_backup_id"] is not None
    safety = BackupRecord.objects.get(pk=outcome["safety_backup_id"])
    assert safety.kind == BackupRecord.Kind.SAFETY and safety.status == BackupRecord.Status.SUCCEEDED
    # The only new rows are the restore's own: its safety backup, its task run and its restore record.
    restore_record = RestoreRecord.objects.get(pk__in=added.get("dbops_restorerecord", []))
    assert (restore_record.status, restore_record.backup_id) == ("succeeded", backup_record.pk)
    assert added == {
        "dbops_backuprecord": [safety.pk],
        "dbops_restorerecord": [restore_record.pk],
        "dbops_taskrun": [task_run.pk],
    }
    # The schedules staff edited after the backup are as they left them.
    nightly = PeriodicTask.objects.get(name="dbops: nightly backup")
    assert nightly.enabled is False and nightly.crontab.hour == "1"
    # And the snapshot taken after the backup still rolls back: its copies live with the state.
    snapshot = Snapshot.objects.get(reason="taken after the backup")
    snapshot_rollback(snapshot_id=snapshot.id)
    assert set(Role.objects.values_list("name", flat=True)) == {"in-the-backup", "after-the-backup"}


def test_restore_db_on_the_command_line_keeps_the_operations_state(backup_then_changes):
    backup_record = backup_then_changes
    before = operations_state()
    out = run_command("restore_db", "--backup-id", str(backup_record.pk), "--confirm", "--quiet")

    added = rows_added(before, operations_state())
    assert list(added) == ["dbops_backuprecord", "dbops_restorerecord"]
    assert [BackupRecord.objects.get(pk=pk).kind for pk in added["dbops_backuprecord"]] == ["safety"]
    assert [RestoreRecord.objects.get(pk=pk).status for pk in added["dbops_restorerecord"]] == ["succeeded"]
    assert set(Role.objects.values_list("name", flat=True)) == {"in-the-backup"}
    assert f"kept as {connections[DEFAULT_DB_ALIAS].settings_dict['NAME']}_pre_restore_" in out
    assert "re-synced" not in out
    # A record re-synced from storage would have lost its location: nothing was re-synced at all.
    assert BackupRecord.objects.get(pk=backup_record.pk).location == backup_record.location


def test_on_the_embedded_sqlite_default_the_state_has_a_file_of_its_own_that_a_restore_leaves_alone(sqlite_env):
    from tests.dbops.commandline import run_manage

    def manage(*args: str) -> str:
        result = run_manage(*args, env=sqlite_env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    manage("migrate", "--no-input", "-v", "0")
    manage("seed_data", "--scale", "0.05", "--seed", "1")
    manage("backup_advanced", "--quiet", "--tag", "before")
    manage("setup_schedules")  # after the backup: a rewind would drop these schedules and the policy
    before = json.loads(manage("list_backups", "--json"))["backups"]
    backup_id = next(row["id"] for row in before if row["tag"] == "before")

    manage("restore_db", "--backup-id", str(backup_id), "--confirm", "--quiet")

    after = json.loads(manage("list_backups", "--json"))["backups"]
    assert {row["id"] for row in before} < {row["id"] for row in after}  # plus the safety backup
    schedules = manage("shell", "-c", SHOW_SCHEDULES)
    assert "dbops: nightly backup" in schedules and "default" in schedules
    folder = Path(sqlite_env["SQLITE_PATH"]).parent
    assert (folder / "db-ops.sqlite3").is_file()


SHOW_SCHEDULES = (
    "from django_celery_beat.models import PeriodicTask; from dbops.models import RetentionPolicy;"
    "print(list(PeriodicTask.objects.values_list('name', flat=True)));"
    "print(list(RetentionPolicy.objects.values_list('name', flat=True)))"
)
