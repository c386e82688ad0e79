"""kill -9 of `python manage.py restore_db` at each stage, and its connections cut: no pg_restore is
left running, the database keeps its data, and the next dbops command (or health_check) removes the
scratch database and the work folder and says so. Real child processes, real SIGKILL, real server."""

from __future__ import annotations

import json
import os

import pytest
from django.db import connection

from dbops.models import RestoreRecord
from dbops.services.backups.restore_history import INTERRUPTED
from tests.dbops.commandline import run_manage, start_manage
from tests.faults import observe
from tests.faults.conftest import data_state

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def restore_command(backup_record, *extra: str) -> list[str]:
    return ["restore_db", "--backup-id", str(backup_record.pk), "--confirm", "--no-safety-backup", *extra]


def work_folders(work_root) -> list[str]:
    return sorted(entry.name for entry in work_root.iterdir())


def next_command_cleans_up(command: str, fault_env: dict, backup_record) -> str:
    """Runs the next dbops command (list_backups or health_check) after a fault; returns what it
    reported about the repair."""
    if command == "health_check":
        result = run_manage("health_check", "--json", env=fault_env)
        assert result.returncode in (0, 1), result.stdout + result.stderr  # degraded at worst: no worker runs here
        check = json.loads(result.stdout)["checks"]["interrupted_restores"]
        assert check["status"] == "ok", check
        return check["message"]
    listed, report = observe.listed_backup_ids(fault_env)
    assert backup_record.pk in listed  # the catalog still lists the backups
    return report


def assert_nothing_left(work_root) -> None:
    assert observe.databases("_restoring_") == []
    assert work_folders(work_root) == []
    assert observe.processes("pg_restore", mentioning=str(work_root)) == []


@pytest.mark.parametrize("next_command", ["list_backups", "health_check"])
def test_kill_while_pg_restore_loads(slow_backup, fault_env, work_root, backup_dir, next_command):
    before, backups = data_state(), observe.files(backup_dir)
    connection.close()
    child = start_manage(*restore_command(slow_backup), env=fault_env)
    # Given pg_restore is loading the slow table into the fresh copy...
    loading = observe.wait_for(
        lambda: observe.backends(datname_prefix=connection.settings_dict["NAME"] + "_restoring_", wait_event="PgSleep"),
        what="pg_restore loading into the _restoring_ copy",
    )
    loaders = observe.processes("pg_restore", mentioning=str(work_root))
    assert loaders and loading
    # ...when the restore is killed...
    observe.kill_and_reap(child)
    # ...its pg_restore dies with it (it would otherwise load for another minute)...
    observe.wait_for(lambda: not any(observe.alive(pid) for pid in loaders), what="pg_restore to die", timeout=10)
    # ...and what it leaves is there until the next dbops command runs.
    fresh = observe.databases("_restoring_")
    assert len(fresh) == 1 and len(work_folders(work_root)) == 1
    restore_record = RestoreRecord.objects.get(backup=slow_backup)
    assert restore_record.status == "running" and restore_record.pid == child.pid

    report = next_command_cleans_up(next_command, fault_env, slow_backup)

    assert f"Dropped {fresh[0]}" in report and "Removed the work folder" in report, report
    assert f"Marked restore #{restore_record.pk} failed" in report, report
    restore_record.refresh_from_db()
    assert (restore_record.status, restore_record.error) == ("failed", INTERRUPTED)
    assert restore_record.finished_at is not None
    assert_nothing_left(work_root)
    assert data_state() == before  # the original data, including the row the backup lacks
    assert observe.files(backup_dir) == backups


def test_kill_while_decoding(bulky_backup, fault_env, work_root, backup_dir):
    before, backups = data_state(), observe.files(backup_dir)
    child = start_manage(*restore_command(bulky_backup), env=fault_env)

    def decoded_so_far() -> list[str]:
        paths = [path for path in observe.open_files(child.pid) if path.endswith("/decoded.dump")]
        return [path for path in paths if os.path.getsize(path) > 0]

    # Given the restore is stopped while it writes the decoded dump (it is stopped at each look)...
    observe.step_until(child.pid, lambda: bool(decoded_so_far()), what="the restore writing decoded.dump")
    decoded = decoded_so_far()
    assert decoded and observe.databases("_restoring_") == []
    # ...when it is killed there, the partly decoded dump stays behind in its work folder.
    observe.kill_and_reap(child)
    assert len(work_folders(work_root)) == 1 and os.path.exists(decoded[0])

    report = next_command_cleans_up("list_backups", fault_env, bulky_backup)

    assert "Removed the work folder" in report, report
    assert_nothing_left(work_root)
    assert data_state() == before and observe.files(backup_dir) == backups


def test_kill_with_parallel_jobs_leaves_no_pg_restore_worker(slow_backup, fault_env, work_root):
    before = data_state()
    connection.close()
    child = start_manage(*restore_command(slow_backup, "--jobs", "2"), env=fault_env)
    observe.wait_for(
        lambda: observe.backends(datname_prefix=connection.settings_dict["NAME"] + "_restoring_", wait_event="PgSleep"),
        what="pg_restore loading into the _restoring_ copy",
    )
    leader_and_workers = observe.processes("pg_restore", mentioning=str(work_root))
    assert len(leader_and_workers) >= 2  # pg_restore --jobs forks its workers

    observe.kill_and_reap(child)
    # The leader dies with the restore; its workers end as it goes (they lose their leader's pipe).
    observe.wait_for(
        lambda: not any(observe.alive(pid) for pid in leader_and_workers), what="every pg_restore to end", timeout=10
    )
    report = next_command_cleans_up("list_backups", fault_env, slow_backup)

    assert "Dropped" in report, report
    assert_nothing_left(work_root)
    assert data_state() == before


def test_connection_cut_mid_load(slow_backup, fault_env, work_root):
    before = data_state()
    connection.close()
    child = start_manage(*restore_command(slow_backup), env=fault_env)
    fresh_prefix = connection.settings_dict["NAME"] + "_restoring_"
    loading = observe.wait_for(
        lambda: observe.backends(datname_prefix=fresh_prefix, wait_event="PgSleep"),
        what="pg_restore loading into the _restoring_ copy",
    )
    fresh = observe.databases("_restoring_")[0]

    # When the server ends the restore's loading session (an operator, a failover, a network cut)...
    observe.query("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [loading])
    stdout, stderr = child.communicate(timeout=60)

    # ...the restore fails with one message that says what state everything is in, and it is so.
    assert child.returncode == 1 and "Traceback" not in stderr, stderr
    assert "pg_restore failed" in stderr
    target = connection.settings_dict["NAME"]
    assert f"Database {target} was left as it was; the partly restored {fresh} was dropped." in stderr, stderr
    assert_nothing_left(work_root)
    assert data_state() == before


def test_kill_while_a_restore_test_loads(slow_backup, fault_env, work_root):
    child = start_manage("verify_backup", str(slow_backup.pk), "--restore-test", env=fault_env)
    observe.wait_for(
        lambda: observe.backends(datname_prefix=connection.settings_dict["NAME"] + "_verify_", wait_event="PgSleep"),
        what="pg_restore loading into the _verify_ scratch database",
    )
    loaders = observe.processes("pg_restore", mentioning=str(work_root))
    assert loaders

    observe.kill_and_reap(child)
    observe.wait_for(lambda: not any(observe.alive(pid) for pid in loaders), what="pg_restore to die", timeout=10)
    scratch = observe.databases("_verify_")
    assert len(scratch) == 1 and len(work_folders(work_root)) == 1

    listed, report = observe.listed_backup_ids(fault_env)

    assert f"Dropped {scratch[0]}, the scratch database of an interrupted verification." in report, report
    assert "Removed the work folder" in report and slow_backup.pk in listed
    assert observe.databases("_verify_") == [] and work_folders(work_root) == []
    slow_backup.refresh_from_db()
    assert slow_backup.verification_status == "never"  # a killed check proves nothing either way
