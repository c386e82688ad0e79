"""describe_database_error: the one line an operator sees for a database problem."""

from __future__ import annotations

import sqlite3

from django.db import OperationalError, ProgrammingError

from dbops.management.base import describe_database_error
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
