"""The commands as an operator runs them: a real `manage.py` process, exit codes 0/1/2, one readable
line on stderr for bad input (no traceback)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from django.db import connection

from tests.dbops.commandline import child_database_env, run_manage
from tests.ports import unused_port

pytestmark = pytest.mark.django_db(transaction=True)


def manage(*args, backup_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A child `manage.py ARGS --skip-checks` run in `backup_dir` (which must stay empty), without S3."""
    env = {**child_database_env(), "BACKUP_DIR": str(backup_dir), **(env or {})}
    return run_manage(*args, "--skip-checks", env={**env, "S3_BACKUP_BUCKET": None}, cwd=backup_dir)


def run_psql(dbname: str, sql: str) -> str:
    """One value from another database, through psql (the password only in the environment)."""
    settings_dict = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": settings_dict["PASSWORD"] or ""}
    args = ["psql", "-X", "-At", "-h", settings_dict["HOST"], "-p", str(settings_dict["PORT"])]
    args += ["-U", settings_dict["USER"], "-d", dbname, "-c", sql]
    return subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_exit_codes_and_messages(tmp_path):
    ok = manage("list_backups", "--json", backup_dir=tmp_path)
    assert ok.returncode == 0, ok.stderr

    unknown = manage("restore_db", "--backup-id", "31337", "--confirm", backup_dir=tmp_path)
    assert unknown.returncode == 1
    assert "No backup with id '31337'" in unknown.stderr and "Traceback" not in unknown.stderr

    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("just some notes")
    refused = manage("restore_db", "--input", str(not_a_backup), "--confirm", backup_dir=tmp_path)
    assert refused.returncode == 1 and "is not a backup" in refused.stderr and "Traceback" not in refused.stderr

    usage = manage("restore_db", "--backup-id", "1", "--input", "x", backup_dir=tmp_path)
    assert usage.returncode == 2 and "not allowed with argument" in usage.stderr


COMMANDS_THAT_NEED_THE_DATABASE = [
    ("backup_advanced", "--quiet"),
    ("list_backups",),
    ("verify_backup", "--latest"),
    ("restore_db", "--backup-id", "1", "--confirm"),
    ("stats",),
    ("export_data", "--output", "out.json"),
]


@pytest.mark.parametrize("args", [*COMMANDS_THAT_NEED_THE_DATABASE, ("migrate",)], ids=lambda args: args[0])
def test_unreachable_database_is_one_line_not_a_traceback(tmp_path, args):
    result = manage(*args, backup_dir=tmp_path, env={"DB_PORT": str(unused_port())})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "Cannot connect to PostgreSQL at 127.0.0.1:" in result.stderr and "Connection refused" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def unmigrated_database():
    name = f"{connection.settings_dict['NAME']}_unmigrated"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield name
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrate_creates_a_missing_database_and_its_operations_database(tmp_path):
    # What the other commands advise for a database that is not there: migrate creates and migrates both
    name = f"{connection.settings_dict['NAME']}_new"
    drop = [f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)' for db in (name, f"{name}_ops")]
    with connection.cursor() as cursor:
        for statement in drop:
            cursor.execute(statement)
    try:
        result = manage("migrate", backup_dir=tmp_path, env={"DB_NAME": name, "OPS_DB_NAME": None})
        assert result.returncode == 0, result.stderr
        assert f"Created the database {name}." in result.stdout
        assert f"Created the operations database {name}_ops." in result.stdout
        assert run_psql(name, "SELECT count(*) > 0 FROM django_migrations WHERE app = 'core'") == "t"
        assert run_psql(f"{name}_ops", "SELECT count(*) > 0 FROM django_migrations WHERE app = 'dbops'") == "t"
        again = manage("migrate", backup_dir=tmp_path, env={"DB_NAME": name, "OPS_DB_NAME": None})
        assert again.returncode == 0 and "Created" not in again.stdout
    finally:
        with connection.cursor() as cursor:
            for statement in drop:
                cursor.execute(statement)


@pytest.mark.parametrize("args", COMMANDS_THAT_NEED_THE_DATABASE, ids=lambda args: args[0])
def test_unmigrated_database_says_to_migrate_and_stays_empty(tmp_path, unmigrated_database, args):
    # OPS_DB_NAME unset: the operations database is the unmigrated one's (DB_NAME_ops), which does not exist
    result = manage(*args, backup_dir=tmp_path, env={"DB_NAME": unmigrated_database, "OPS_DB_NAME": None})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "run `python manage.py migrate` first" in result.stderr
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [unmigrated_database])
        assert cursor.fetchone() == (1,)
    tables = run_psql(unmigrated_database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    assert tables == "0"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []
