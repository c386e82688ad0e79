"""dbops installed in a project that is not MultiPULT (tests/sample_project: a library with authors,
books and loans): on its own database on the real PostgreSQL server, its own manage.py runs backup ->
verify -> restore -> export -> import, each as a child process whose environment holds no MultiPULT
variable and which never imports a multipult module (-X importtime lists every import it made)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid
from decimal import Decimal

import psycopg2
import pytest
from django.conf import settings

from multipult.config import ENV_VARS
from tests.paths import ROOT

MANAGE_PY = ROOT / "tests" / "sample_project" / "manage.py"
TABLES = ("library_author", "library_book", "library_loan")

pytestmark = pytest.mark.slow


def _server() -> dict[str, str]:
    database = settings.DATABASES["default"]
    return {
        "host": str(database["HOST"]),
        "port": str(database["PORT"]),
        "user": str(database["USER"]),
        "password": str(database["PASSWORD"]),
    }


@contextlib.contextmanager
def _connect(dbname: str):
    connection = psycopg2.connect(dbname=dbname, **_server())
    connection.autocommit = True
    try:
        yield connection
    finally:
        connection.close()


class SampleProject:
    """The library project on database `name`, run through its own manage.py."""

    def __init__(self, name: str, backup_dir) -> None:
        self.name = name
        self.backup_dir = backup_dir
        server = _server()
        # The child starts from this process's environment minus everything MultiPULT reads.
        multipult_vars = {var.name for var in ENV_VARS} | {"DJANGO_SETTINGS_MODULE"}
        self.env = {key: value for key, value in os.environ.items() if key not in multipult_vars}
        self.env |= {
            "DJANGO_SETTINGS_MODULE": "tests.sample_project.settings",
            "PGHOST": server["host"],
            "PGPORT": server["port"],
            "PGUSER": server["user"],
            "PGPASSWORD": server["password"],
            "LIBRARY_DB_NAME": name,
            "LIBRARY_BACKUP_DIR": str(backup_dir),
        }

    def manage(self, *args: str, settings_module: str | None = None) -> subprocess.CompletedProcess:
        env = self.env | ({"DJANGO_SETTINGS_MODULE": settings_module} if settings_module else {})
        result = subprocess.run(
            [sys.executable, "-X", "importtime", str(MANAGE_PY), *args],
            cwd=ROOT / "tests",  # not the project root: nothing is importable from the working directory
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        imported = [
            line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
        ]
        assert "django.core.management" in imported  # the import log is there, so its silence below means something
        assert [module for module in imported if module.split(".")[0] == "multipult"] == []
        result.errors = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("import time:"))
        return result

    def ok(self, *args: str) -> str:
        result = self.manage(*args)
        assert result.returncode == 0, f"{args}: {result.errors}\n{result.stdout}"
        return result.stdout

    def rows(self) -> dict[str, list[tuple]]:
        with _connect(self.name) as connection, connection.cursor() as cursor:
            found = {}
            for table in TABLES:
                cursor.execute(f"SELECT * FROM {table} ORDER BY id")  # noqa: S608 - fixed table names
                found[table] = cursor.fetchall()
            return found

    def execute(self, *statements: str) -> None:
        with _connect(self.name) as connection, connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def all(self, query: str, *params) -> list[tuple]:
        with _connect(self.name) as connection, connection.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall()

    def drop_database(self, name: str) -> None:
        with _connect("postgres") as connection, connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE "{name}"')

    def one(self, query: str, *params) -> tuple | None:
        with _connect(self.name) as connection, connection.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchone()


def _databases_named_like(name: str) -> list[str]:
    with _connect("postgres") as connection, connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [name + "%"])
        return sorted(row[0] for row in cursor.fetchall())


@pytest.fixture
def sample_project(tmp_path):
    """A fresh database for the library project (migrated by its own manage.py); dropped afterwards
    with every database a restore or verification derived from it."""
    name = f"library_{uuid.uuid4().hex[:10]}"
    with _connect("postgres") as connection, connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    project = SampleProject(name, tmp_path / "library-backups")
    try:
        project.ok("migrate", "--no-input", "-v", "0")
        yield project
    finally:
        with _connect("postgres") as connection, connection.cursor() as cursor:
            for database in _databases_named_like(name):
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [database])
                cursor.execute(f'DROP DATABASE IF EXISTS "{database}"')


def test_the_sample_project_backs_up_verifies_restores_exports_and_imports(sample_project, tmp_path):
    # Given the library's own rows (seeded by its own command)
    assert "3 authors, 5 books, 5 loans" in sample_project.ok("seed_library")
    seeded = sample_project.rows()
    # (a DecimalField and a DateField ride along: MultiPULT's own models have neither)
    assert sample_project.one("SELECT sum(price) FROM library_book") == (Decimal("37.54"),)
    assert sample_project.one("SELECT count(born) FROM library_author") == (2,)

    # When it backs up and verifies by a test restore
    assert "succeeded" in sample_project.ok("backup_advanced", "--quiet")
    (backup_id,) = sample_project.one("SELECT id FROM dbops_backuprecord WHERE kind = 'full' AND status = 'succeeded'")
    assert "verified" in sample_project.ok("verify_backup", "--latest", "--restore-test")
    assert sample_project.one("SELECT verification_status FROM dbops_backuprecord WHERE id = %s", backup_id) == (
        "passed",
    )

    # ...and its rows change, then it restores the backup
    sample_project.execute(
        "UPDATE library_book SET title = 'defaced'",
        "DELETE FROM library_loan WHERE id = 1",
        "INSERT INTO library_author (name, created_at) VALUES ('Intruder', now())",
    )
    assert sample_project.rows() != seeded
    sample_project.ok("restore_db", "--backup-id", str(backup_id), "--confirm", "--quiet")

    # Then the rows are exactly the backup's, and dbops recorded the restore in its own status row
    assert sample_project.rows() == seeded
    status, source_id, safety_id, previous = sample_project.one(
        "SELECT status, backup_id, safety_backup_id, previous_database FROM dbops_restorerecord"
    )
    assert (status, source_id) == ("succeeded", backup_id) and safety_id is not None
    assert previous in _databases_named_like(sample_project.name)

    # When it exports its entities, loses the rows and imports the file
    export = tmp_path / "library.jsonl"
    sample_project.ok("export_data", "--entities", "authors,books,loans", "--format", "jsonl", "--output", str(export))
    sample_project.execute("DELETE FROM library_loan", "DELETE FROM library_book", "DELETE FROM library_author")
    assert sample_project.rows() == {table: [] for table in TABLES}
    out = sample_project.ok("import_data", "--input", str(export), "--format", "jsonl")

    # Then every row is back as it was
    assert re.search(r"Imported 13 rows", out), out
    assert sample_project.rows() == seeded

    # When the backup is restored once more (copies are named to the second: drop the first one's)
    sample_project.drop_database(previous)
    sample_project.ok("restore_db", "--backup-id", str(backup_id), "--confirm", "--no-safety-backup", "--quiet")

    # Then the first restore's record was carried across this one (the backup predates both)
    history = sample_project.all("SELECT status, safety_backup_id IS NOT NULL FROM dbops_restorerecord ORDER BY id")
    assert history == [("succeeded", True), ("succeeded", False)]
    assert sample_project.rows() == seeded


def _migration_before_restore_records() -> str:
    """The dbops migration the one creating RestoreRecord depends on (names change when migrations merge)."""
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.operations import CreateModel

    for (app, _), migration in MigrationLoader(None, ignore_no_migrations=True).disk_migrations.items():
        creates = [op for op in migration.operations if isinstance(op, CreateModel) and op.name == "RestoreRecord"]
        if app == "dbops" and creates:
            (dependency,) = [name for dep_app, name in migration.dependencies if dep_app == "dbops"]
            return dependency
    raise AssertionError("no dbops migration creates RestoreRecord")


def test_restoring_a_backup_older_than_the_restore_history_says_so(sample_project, tmp_path):
    # Given a backup file taken while dbops was migrated back before the restore history table (a file
    # backup writes no catalog record, whose later columns that older schema lacks)
    sample_project.ok("seed_library")
    sample_project.ok("migrate", "dbops", _migration_before_restore_records(), "-v", "0")
    backup_file = tmp_path / "before-restore-history.dump"
    sample_project.ok("backup_db", "--output", str(backup_file))
    sample_project.ok("migrate", "-v", "0")
    sample_project.execute("DELETE FROM library_loan")

    # When it is restored
    result = sample_project.manage("restore_db", "--input", str(backup_file), "--confirm")

    # Then the restore stands (exit 0, rows back) and the operator is told why its record is missing
    assert result.returncode == 0, result.errors
    assert sample_project.one("SELECT count(*) FROM library_loan") == (5,)
    assert (
        "could not be written into the restored database" in result.errors
        and "run `manage.py migrate`" in result.errors
    )
    assert "Traceback" not in result.errors
    sample_project.ok("migrate", "-v", "0")
    assert sample_project.one("SELECT count(*) FROM dbops_restorerecord") == (0,)


def test_a_wrong_entity_model_in_the_sample_project_is_one_clear_error(sample_project, tmp_path):
    sample_project.ok("seed_library")
    before = sample_project.rows()
    target = tmp_path / "never.jsonl"

    result = sample_project.manage(
        "export_data",
        "--format",
        "jsonl",
        "--output",
        str(target),
        settings_module="tests.sample_project.settings_broken",
    )

    assert result.returncode == 1
    assert "dbops.E102" in result.errors and "'library.Magazine' is not an installed model" in result.errors
    assert "Traceback" not in result.errors
    assert not target.exists() and sample_project.rows() == before
    assert sample_project.one("SELECT count(*) FROM dbops_datatransferrun") == (0,)


ADMIN_PAGES = """
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

client = Client()
client.force_login(User.objects.create_superuser("librarian", "l@example.org", "a-long-password-1"))
for name, args in [("admin:index", []), ("admin:dbops_backuprecord_changelist", []),
                   ("admin:dbops_backuprecord_change", [1]), ("admin:dbops_backuprecord_restore", [1]),
                   ("admin:dbops_dashboard", []), ("admin:dbops_restorerecord_changelist", []),
                   ("admin:dbops_snapshot_changelist", []), ("dbops:slow-statements", [])]:
    response = client.get(reverse(name, args=args), HTTP_HOST="localhost")
    print(name, response.status_code, "type the database name" in response.content.decode())
"""


def test_the_dbops_admin_pages_render_in_the_sample_project(sample_project):
    # The admin templates ship inside the app: a project without MultiPULT's templates folder renders them.
    sample_project.ok("backup_advanced", "--quiet")

    out = sample_project.ok("shell", "--no-imports", "-c", ADMIN_PAGES)

    statuses = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert statuses == {
        "admin:index": "200 False",
        "admin:dbops_backuprecord_changelist": "200 False",
        "admin:dbops_backuprecord_change": "200 False",
        "admin:dbops_backuprecord_restore": "200 True",  # the typed confirmation page
        "admin:dbops_dashboard": "200 False",
        "admin:dbops_restorerecord_changelist": "200 False",
        "admin:dbops_snapshot_changelist": "200 False",
        "dbops:slow-statements": "200 False",
    }
