"""What an older, non-atomic restore leaves when killed between its two renames (the first rename is
done here by hand): the database missing, `<name>_pre_restore_<stamp>` and `<name>_restoring_<stamp>`
beside it. The next dbops command, health_check or retention run puts the database back; a scratch
database of a run that is still going is left alone."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.db import connection
from django.utils import timezone

from dbops.engines import get_connector
from dbops.engines.postgresql.swap import VERIFY_LOCK_SCOPE
from dbops.services.backups.create import backup_create
from dbops.services.backups.retention import retention_run
from multipult.core.models import Role
from tests.commands import run_command
from tests.dbops.commandline import run_manage
from tests.faults import observe
from tests.faults.conftest import data_state

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def interrupted_old_style_swap(*, keep_previous: bool = True) -> tuple[str, str]:
    """The state of an older run killed between its renames; returns (previous, fresh). The fresh copy
    differs from the original (a role less), so putting back the wrong one shows."""
    target = connection.settings_dict["NAME"]
    stamp = timezone.now().strftime("%Y%m%d%H%M%S")
    previous, fresh = f"{target}_pre_restore_{stamp}", f"{target}_restoring_{stamp}"
    connection.close()
    # The old run had the database to itself; here a session another thread of this test process left open
    # (a live server's request thread, seen in a full run under xdist) would make the copy fail.
    strays = observe.query(
        "SELECT pg_terminate_backend(pid), application_name, state, left(query, 80) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        [target],
    )
    if strays:
        print(f"ended {len(strays)} session(s) left open on {target}: {strays}")
    observe.query(f'CREATE DATABASE "{fresh}" TEMPLATE "{target}"')
    observe.query("DELETE FROM core_role WHERE name = 'original-role'", dbname=fresh)
    observe.query(f'ALTER DATABASE "{target}" RENAME TO "{previous}"')  # the older run's first rename
    if not keep_previous:
        observe.query(f'DROP DATABASE "{previous}"')  # and an operator dropped the kept copy since
    assert not observe.database_exists(target)
    return previous, fresh


@pytest.fixture
def backed_up(fault_env, original_data):
    return backup_create(tag="before")


def test_list_backups_puts_the_database_back_instead_of_failing_to_connect(backed_up, fault_env):
    before = data_state()
    previous, fresh = interrupted_old_style_swap()

    listed, report = observe.listed_backup_ids(fault_env)

    target = connection.settings_dict["NAME"]
    assert f"Database {target} was missing after a restore interrupted between its two renames: put {previous}" in (
        report
    )
    assert f"Dropped {fresh}, the copy that interrupted restore had loaded but not swapped in." in report
    assert backed_up.pk in listed
    assert data_state() == before  # the original, not the unswapped copy
    assert observe.databases("_pre_restore_") == observe.databases("_restoring_") == []


def test_health_check_repairs_the_half_done_swap_and_reports_it(backed_up, fault_env):
    before = data_state()
    previous, fresh = interrupted_old_style_swap()

    result = run_manage("health_check", "--json", env=fault_env)

    checks = json.loads(result.stdout)["checks"]
    assert checks["interrupted_restores"]["status"] == "ok"
    assert f"put {previous}" in checks["interrupted_restores"]["message"]
    assert f"Dropped {fresh}" in checks["interrupted_restores"]["message"]
    assert checks["database"]["status"] == checks["migrations"]["status"] == "ok"  # probed after the repair
    assert result.returncode in (0, 1)
    assert data_state() == before


def test_without_a_copy_to_put_back_nothing_is_guessed_and_health_is_unhealthy(backed_up, fault_env):
    _, fresh = interrupted_old_style_swap(keep_previous=False)
    target = connection.settings_dict["NAME"]

    listing = run_manage("list_backups", env=fault_env)  # the catalog lives apart: it still lists
    health = run_manage("health_check", "--json", env=fault_env)

    assert "Traceback" not in listing.stderr
    assert f"Database {target} is missing and there is no {target}_pre_restore_* copy to put back." in listing.stderr
    assert f"{fresh} may hold an unfinished restore and was kept." in listing.stderr
    assert health.returncode == 2
    checks = json.loads(health.stdout)["checks"]
    assert checks["interrupted_restores"]["status"] == checks["database"]["status"] == "unhealthy"
    assert observe.database_exists(fresh)  # kept: it may be the only copy


def test_retention_run_repairs_first(backed_up, fault_env):
    before = data_state()
    _, fresh = interrupted_old_style_swap()

    run = retention_run(daily=7)  # the service, as the scheduled task calls it

    target = connection.settings_dict["NAME"]
    assert any(line.startswith(f"Database {target} was missing") for line in run.leftovers.done)
    assert any(line.startswith(f"Dropped {fresh}") for line in run.leftovers.done) and run.ok
    assert data_state() == before


def test_scratch_databases_of_running_restores_and_verifications_are_left_alone(fault_env, original_data):
    target = connection.settings_dict["NAME"]
    stamp = timezone.now().strftime("%Y%m%d%H%M%S")
    restoring, verifying = f"{target}_restoring_{stamp}", f"{target}_verify_{stamp}"
    observe.query(f'CREATE DATABASE "{restoring}"')
    observe.query(f'CREATE DATABASE "{verifying}"')
    connector = get_connector()
    verification = observe.server()  # holds the verification lock as a running restore test does
    with verification.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock_shared(%s)", [connector.lock_key(VERIFY_LOCK_SCOPE)])

    with connector.lock():  # a running restore
        stderr = StringIO()
        run_command("list_backups", stderr=stderr)
        assert stderr.getvalue() == ""
        assert observe.database_exists(restoring) and observe.database_exists(verifying)
    verification.close()

    stderr = StringIO()
    run_command("list_backups", stderr=stderr)
    assert f"Dropped {restoring}, the unfinished copy of an interrupted restore of {target}." in stderr.getvalue()
    assert f"Dropped {verifying}, the scratch database of an interrupted verification." in stderr.getvalue()
    assert not observe.database_exists(restoring) and not observe.database_exists(verifying)
    assert Role.objects.filter(name="original-role").exists()


def test_a_missing_database_is_left_as_it_is_while_a_run_holds_the_lock(backed_up, fault_env):
    previous, _ = interrupted_old_style_swap()
    target = connection.settings_dict["NAME"]

    with get_connector().lock():  # an older run still between its renames, alive
        result = run_manage("list_backups", env=fault_env)
        assert f"Database {target} is missing while a backup or restore of it holds the lock" in result.stderr
        assert not observe.database_exists(target) and observe.database_exists(previous)

    _, report = observe.listed_backup_ids(fault_env)  # once it has ended
    assert f"put {previous} (the database as it was before that restore) back as {target}" in report
    assert observe.database_exists(target)
