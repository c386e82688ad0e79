"""The rename swap is one transaction. A test session holds a lock on the fresh copy, so the restore's
swap stops exactly between its two renames (the first done, the second waiting); there the restore is
killed, or its connection cut. Either way the database keeps its original data under its name."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import connection

from tests.dbops.commandline import start_manage
from tests.faults import observe
from tests.faults.conftest import data_state

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@contextmanager
def swap_stopped_between_renames(backup_record, fault_env):
    """Starts the restore and yields (child, fresh copy, swap session pid) once its swap has renamed the
    database away inside its transaction and waits for the lock on the fresh copy."""
    target = connection.settings_dict["NAME"]
    connection.close()  # the swap ends the other sessions on the database anyway
    child = start_manage(
        "restore_db", "--backup-id", str(backup_record.pk), "--confirm", "--no-safety-backup", env=fault_env
    )
    observe.wait_for(
        lambda: observe.backends(datname_prefix=target + "_restoring_", wait_event="PgSleep"),
        what="pg_restore pausing in the first row",
    )
    fresh = observe.databases("_restoring_")[0]
    holder = observe.server()
    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(f"COMMENT ON DATABASE \"{fresh}\" IS 'held by a fault test'")  # locks the database object
        swap_session = observe.wait_for(
            lambda: observe.backends(query_prefix="ALTER DATABASE", wait_event="Lock"),
            what="the swap waiting between its two renames",
        )
        assert observe.database_exists(target)  # renamed away inside the swap's transaction: not visible outside
        yield child, fresh, swap_session[0], lambda: holder.close()  # closing ends its transaction: the lock goes
    finally:
        holder.close()


def test_kill_between_the_two_renames_keeps_the_original_database(pausing_backup, fault_env, work_root, backup_dir):
    before, backups = data_state(), observe.files(backup_dir)
    target = connection.settings_dict["NAME"]
    with swap_stopped_between_renames(pausing_backup, fault_env) as (child, fresh, swap_session, release_lock):
        observe.kill_and_reap(child)
        release_lock()  # the killed run's session may now do its second rename...
        observe.wait_for(lambda: swap_session not in observe.backends(), what="the killed run's session to end")

    # ...but its transaction never commits: the database is there, with its original data.
    assert observe.database_exists(target) and observe.databases("_pre_restore_") == []
    assert data_state() == before
    # The fresh copy and the work folder stay until the next dbops command.
    assert observe.databases("_restoring_") == [fresh]
    listed, report = observe.listed_backup_ids(fault_env)
    assert pausing_backup.pk in listed
    assert f"Dropped {fresh}" in report and "Removed the work folder" in report, report
    assert observe.databases("_restoring_") == [] and list(work_root.iterdir()) == []
    assert observe.files(backup_dir) == backups


def test_connection_cut_between_the_two_renames_fails_with_the_true_state(pausing_backup, fault_env, work_root):
    before = data_state()
    target = connection.settings_dict["NAME"]
    with swap_stopped_between_renames(pausing_backup, fault_env) as (child, fresh, swap_session, release_lock):
        observe.query("SELECT pg_terminate_backend(%s)", [swap_session])
        release_lock()  # the restore may now drop its fresh copy
        stdout, stderr = child.communicate(timeout=60)

    assert child.returncode == 1 and "Traceback" not in stderr, stderr
    assert "Could not swap in the restored database: server closed the connection" in stderr
    assert f"Database {target} was left as it was; the restored copy {fresh} was dropped." in stderr
    assert data_state() == before
    assert observe.databases("_restoring_") == observe.databases("_pre_restore_") == []
    assert list(work_root.iterdir()) == []
