"""apply_retention against the real PostgreSQL catalog: dry run, bad input, pre-restore databases."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import psycopg2
import pytest
from django.core.management import CommandError
from django.db import connection
from django.utils import timezone

from dbops.engines.postgresql.maintenance import maintenance_connect
from dbops.models import BackupRecord, RetentionPolicy
from dbops.services.backups.pre_restore import pre_restore_databases
from tests.commands import command_error, run_command
from tests.dbops.commandline import child_database_env
from tests.paths import ROOT

Status = BackupRecord.Status


def catalog_row(days_ago: float, **fields) -> BackupRecord:
    values = {
        "status": Status.SUCCEEDED,
        "started_at": timezone.now() - dt.timedelta(days=days_ago),
        "engine": "postgresql",
        "database_name": "multipult",
        "format": "custom",
        "storage_name": f"multipult/row-{days_ago}.dump",
    }
    values.update(fields)
    return BackupRecord.objects.create(**values)


def catalog_state():
    return list(BackupRecord.objects.order_by("pk").values_list("pk", "status", "deleted_at"))


@pytest.fixture
def nightly_history(db):
    return [catalog_row(days) for days in range(0, 20)]


def test_dry_run_prints_every_decision_and_changes_nothing(nightly_history):
    before = catalog_state()
    output = run_command("apply_retention", "--daily", "3", "--dry-run")
    assert catalog_state() == before
    lines = [line for line in output.splitlines() if line.startswith("  ")]
    assert len(lines) == 20
    assert sum(line.lstrip().startswith("keep") for line in lines) == 3
    assert sum(line.lstrip().startswith("would delete") for line in lines) == 17
    assert "not selected by daily 3, weekly 0, monthly 0" in output
    assert "Dry run: nothing was deleted." in output


def test_dry_run_json_lists_keep_and_delete_with_reasons(nightly_history):
    before = catalog_state()
    payload = json.loads(run_command("apply_retention", "--daily", "2", "--keep-last", "4", "--dry-run", "--json"))
    assert catalog_state() == before
    (policy,) = payload["policies"]
    assert [item["id"] for item in policy["keep"]] == [b.pk for b in nightly_history[:4]]
    assert policy["keep"][3]["reason"] == "last 4 of 4"
    assert {item["id"] for item in policy["delete"]} == {b.pk for b in nightly_history[4:]}
    assert policy["deleted"] == [] and payload["dry_run"] is True


def test_named_policy_with_count_override_is_not_saved(nightly_history):
    RetentionPolicy.objects.create(name="nightly", keep_daily=7, keep_weekly=0, keep_monthly=0)
    payload = json.loads(run_command("apply_retention", "--policy", "nightly", "--daily", "1", "--dry-run", "--json"))
    assert len(payload["policies"][0]["keep"]) == 1
    assert RetentionPolicy.objects.get(name="nightly").keep_daily == 7


@pytest.mark.parametrize(
    "args, message",
    [
        (["--policy", "nope"], "No retention policy named 'nope'"),
        (["--daily", "0"], "keeps nothing"),
        ([], "No enabled retention policy"),
        (["--daily", "2", "--database", "elsewhere"], "Unknown database alias 'elsewhere'"),
        (["--policy", "off", "--tag", "nightly"], "^--tag: A tag scopes only a run given by counts"),
        (["--tag", "nightly"], "^--tag: A tag scopes only a run given by counts"),
    ],
)
def test_bad_input_is_one_message_and_changes_nothing(nightly_history, args, message):
    RetentionPolicy.objects.create(name="off", enabled=False)
    before = catalog_state()
    command_error("apply_retention", *args, match=message)
    assert catalog_state() == before


@pytest.mark.parametrize("value", ["-1", "seven"])
def test_bad_counts_are_refused_by_the_parser(nightly_history, value):
    before = catalog_state()
    command_error("apply_retention", "--daily", value, match="invalid count")
    assert catalog_state() == before


def all_databases() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def pre_restore_copies(db):
    """Three `<test db>_pre_restore_<time>` databases on the real server, dropped afterwards."""
    base = connection.settings_dict["NAME"]
    names = [f"{base}_pre_restore_{stamp}" for stamp in ("20260101010000", "20260301000000", "20260201235959")]
    # Another database whose name merely starts the same, with its own copy: never ours to drop.
    names.append(f"{base}x_pre_restore_20250101000000")
    maintenance = maintenance_connect(connection.settings_dict)
    with maintenance.cursor() as cursor:
        for name in names:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f'CREATE DATABASE "{name}"')
    yield names
    with maintenance.cursor() as cursor:
        for name in names:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
    maintenance.close()


def test_pre_restore_databases_older_than_the_newest_are_dropped(pre_restore_copies):
    jan, mar, feb, other = pre_restore_copies
    assert pre_restore_databases() == [mar, feb, jan]
    catalog_row(0)

    dry = json.loads(run_command("apply_retention", "--daily", "1", "--dry-run", "--json"))
    assert dry["pre_restore_databases"][0]["would_drop"] == [feb, jan]
    assert pre_restore_databases() == [mar, feb, jan]

    applied = json.loads(run_command("apply_retention", "--daily", "1", "--json"))
    assert applied["pre_restore_databases"][0]["dropped"] == [feb, jan]
    assert pre_restore_databases() == [mar]
    assert other in all_databases()


def test_a_pre_restore_database_in_use_is_reported_not_forced(pre_restore_copies):
    jan, mar, feb, _ = pre_restore_copies
    catalog_row(0)
    host, port = connection.settings_dict["HOST"], connection.settings_dict["PORT"]
    user, password = connection.settings_dict["USER"], connection.settings_dict["PASSWORD"]
    holder = psycopg2.connect(dbname=jan, host=host, port=port, user=user, password=password)
    try:
        out, err = StringIO(), StringIO()
        command_error("apply_retention", "--daily", "1", stdout=out, stderr=err, match="failures")
        assert f"could not drop {jan}" in err.getvalue()
        assert pre_restore_databases() == [mar, jan]
    finally:
        holder.close()


def test_refuses_while_a_backup_or_restore_holds_the_database_lock(nightly_history):
    from dbops.engines import get_connector

    before = catalog_state()
    with get_connector("default").lock(), pytest.raises(CommandError, match="Another backup or restore"):
        run_command("apply_retention", "--daily", "1")
    assert catalog_state() == before
    # A dry run needs no lock.
    with get_connector("default").lock():
        assert "would delete" in run_command("apply_retention", "--daily", "1", "--dry-run")


@pytest.mark.parametrize("history_size", [5, 60])
def test_planning_costs_the_same_queries_whatever_the_catalog_size(db, history_size):
    from dbops.services.backups.retention import retention_apply
    from tests.queries import queries_on_every_database

    for days in range(history_size):
        catalog_row(days)
    policy = RetentionPolicy.objects.create(name="p", keep_daily=3, keep_weekly=0, keep_monthly=0)
    with queries_on_every_database() as queries:
        outcome = retention_apply(policy=policy, dry_run=True)
    assert len(queries) == 1, "the catalog, read once"
    assert len(outcome.plan.delete) == history_size - 3


@pytest.mark.django_db(transaction=True)
def test_exit_codes_and_one_line_messages_from_the_shell():
    import os
    import subprocess
    import sys

    root = ROOT
    env = os.environ | child_database_env()

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", "apply_retention", *args], cwd=root, env=env, capture_output=True, text=True
        )

    refused = manage("--policy", "nope")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "CommandError: No retention policy named 'nope' (known: none)."
    bad_count = manage("--daily", "-3")
    assert bad_count.returncode == 2 and "invalid count" in bad_count.stderr
    catalog_row(0)
    ok = manage("--daily", "1", "--dry-run")
    assert ok.returncode == 0 and "Dry run: nothing was deleted." in ok.stdout
    assert manage("--help").returncode == 0


def test_a_misspelt_policy_never_stops_the_others_and_its_last_run_says_failed(db, backup_dir):
    # given: a policy saved (before the admin offered a choice) with a misspelt alias, and a good one
    history = [catalog_row(days) for days in range(0, 5)]
    broken = RetentionPolicy.objects.create(name="typo", database_alias="defualt", keep_daily=1, keep_weekly=0)
    RetentionPolicy.objects.create(name="nightly", keep_daily=2, keep_weekly=0, keep_monthly=0)

    # when: the nightly run applies every enabled policy
    stderr = StringIO()
    with pytest.raises(CommandError, match="Retention finished with failures"):
        run_command("apply_retention", stderr=stderr)

    # then: the good policy did its deletions, the broken one says why and is recorded as failed
    statuses = dict(BackupRecord.objects.values_list("pk", "status"))
    assert [statuses[backup.pk] for backup in history] == [Status.SUCCEEDED] * 2 + [Status.DELETED] * 3
    assert "typo: not applied: Retention policy 'typo' names the database alias 'defualt'" in stderr.getvalue()
    broken.refresh_from_db()
    assert broken.last_run_ok is False and "defualt" in broken.last_run_summary["error"]
    assert RetentionPolicy.objects.get(name="nightly").last_run_ok is True


def test_a_named_broken_policy_is_refused_in_one_line_and_changes_nothing(nightly_history):
    RetentionPolicy.objects.create(name="typo", database_alias="defualt", keep_daily=1)
    before = catalog_state()

    command_error("apply_retention", "--policy", "typo", match="names the database alias 'defualt'")

    assert catalog_state() == before
