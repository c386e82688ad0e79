"""describe_database_error: the one line an operator sees for a database problem."""

from __future__ import annotations

import sqlite3

import pytest
from django.core.management import load_command_class
from django.db import OperationalError, ProgrammingError

from dbops.exceptions import BackupError, OutputExists, SnapshotError
from dbops.management.base import describe_database_error, option_string
from dbops.models import BackupRecord
from dbops.services.backups.create import backup_create, backup_export
from tests.commands import command_error
from tests.dbops.commandline import run_manage


def test_missing_table_on_either_engine_says_to_migrate():
    postgres = ProgrammingError('relation "dbops_backuprecord" does not exist\nLINE 1: SELECT "id"')
    sqlite = OperationalError("no such table: dbops_backuprecord")
    for error in (postgres, sqlite):
        assert describe_database_error(error) == (
            "The database has no table dbops_backuprecord: run `python manage.py migrate` first."
        )


def test_other_errors_keep_their_first_lines_without_the_sql_echo():
    error = ProgrammingError('permission denied for table core_user\nLINE 1: SELECT "core_user"."id"\n        ^')
    assert describe_database_error(error) == "Database error: permission denied for table core_user"


def test_an_unmigrated_sqlite_file_says_to_migrate_and_stays_empty(sqlite_env, tmp_path):
    for args in (["list_backups"], ["backup_advanced", "--quiet"], ["stats"]):
        result = run_manage(*args, env=sqlite_env)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "run `python manage.py migrate` first" in result.stderr
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone() == (0,)


# -- a service's DbopsError at the command line: the command's own option first, advice after ----------
def test_option_string_finds_the_long_option_of_a_parameter_also_inside_the_chosen_subcommand():
    backup_db = load_command_class("dbops", "backup_db").create_parser("manage.py", "backup_db")
    assert option_string(backup_db, "output", {}) == "--output"  # not -o
    assert option_string(backup_db, "fmt", {}) == "--format"  # found by dest, not by name
    assert option_string(backup_db, "not_an_option", {}) is None
    pitr = load_command_class("dbops", "pitr").create_parser("manage.py", "pitr")
    assert option_string(pitr, "port", {"action": "restore"}) == "--port"
    assert option_string(pitr, "port", {"action": "status"}) is None  # status takes no port
    verify = load_command_class("dbops", "verify_backup").create_parser("manage.py", "verify_backup")
    assert option_string(verify, "backup_id", {}) is None  # positional: the message stands alone


@pytest.mark.django_db(transaction=True)
def test_a_service_error_names_the_commands_flag_and_only_there(backup_dir, some_data):
    # Given a tag longer than the catalog holds
    tag = "x" * 65
    # Then the service says it in its own words and names the parameter...
    with pytest.raises(BackupError) as refused:
        backup_create(tag=tag)
    assert str(refused.value) == "The tag is longer than 64 characters." and refused.value.parameter == "tag"
    # ...and the command puts its own flag in front: one line, nothing written
    message = command_error("backup_advanced", "--tag", tag, "--quiet")
    assert message == "--tag: The tag is longer than 64 characters."
    assert not BackupRecord.objects.exists() and list(backup_dir.iterdir()) == []


@pytest.mark.django_db(transaction=True)
def test_advice_for_the_command_line_is_added_by_the_command(tmp_path, backup_dir, some_data):
    output = tmp_path / "backup.sql"
    output.write_text("precious")
    with pytest.raises(OutputExists) as refused:
        backup_export(output=output)
    assert "--" not in str(refused.value)  # what the admin or a task would show
    message = command_error("backup_db", "--output", str(output))
    assert message == f"--output: {output} already exists; choose another name. Pass --overwrite to replace it."
    assert output.read_text() == "precious" and not output.with_name("backup.sql.sha256").exists()


@pytest.mark.django_db
def test_a_scheduled_task_records_the_plain_message():
    from dbops import tasks
    from dbops.models import TaskRun

    with pytest.raises(SnapshotError):
        tasks.prune_snapshots.apply(kwargs={"older_than_days": -1}, task_id="prune-bad", throw=True).get()
    assert TaskRun.objects.get(task_id="prune-bad").error == "SnapshotError: The age in days must be 0 or more, got -1."


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (["list_backups", "--limt", "3"], "(did you mean --limit?)"),
        (["apply_retention", "--dry-rn"], "(did you mean --dry-run?)"),
        (["pitr", "status", "--jsn"], "(did you mean --json?)"),  # an option of a subcommand
    ],
)
def test_a_misspelt_flag_is_refused_with_the_flag_it_resembles(args, suggestion):
    message = command_error(*args, match="unrecognized arguments: ")
    assert message.endswith(suggestion), message


def test_a_flag_like_no_other_gets_no_guess_and_a_password_is_never_echoed():
    assert "did you mean" not in command_error("list_backups", "--frobnicate")
    message = command_error("create_user", "--username", "a", "--email", "a@b.co", "--pasword", "hunter2")
    assert "hunter2" not in message and "did you mean" not in message


def test_the_suggestion_reaches_an_operators_terminal_with_exit_2():
    result = run_manage("list_backups", "--limt", "3")
    assert result.returncode == 2
    assert "unrecognized arguments: --limt 3 (did you mean --limit?)" in result.stderr


def test_a_command_keeps_info_logs_off_the_console_unless_asked_with_verbosity_2(sqlite_env):
    assert run_manage("migrate", "-v", "0", env=sqlite_env).returncode == 0
    plain = run_manage("backup_advanced", "--quiet", env=sqlite_env)
    assert plain.returncode == 0 and "succeeded" in plain.stdout, plain.stderr
    assert "INFO" not in plain.stderr, plain.stderr  # the command's own line says it already
    verbose = run_manage("backup_advanced", "--quiet", "-v", "2", env=sqlite_env)
    assert verbose.returncode == 0 and "INFO" in verbose.stderr and "backup 2 succeeded" in verbose.stderr
