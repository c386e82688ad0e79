"""PostgreSQL server side of PITR: its WAL settings (checked, with the fix for each) and pg_basebackup.

Uses short autocommit connections of its own (psycopg2) to the server behind a database alias:
settings are server-wide facts, not part of the application's transaction.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from dbops.engines.child_processes import child_popen
from dbops.exceptions import PitrError

MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"
Progress = Callable[[str, int, int], None]  # (label, done, total), e.g. dbops.management.output.TtyProgress


@dataclass
class SettingCheck:
    name: str
    actual: str
    expected: str
    ok: bool
    fix: str = ""  # the statement that makes it right
    warning: bool = False  # advice, not a blocker


@dataclass
class PitrSettingsReport:
    checks: list[SettingCheck]
    archive_command: str  # the one to configure
    archiver: dict[str, object] = field(default_factory=dict)  # pg_stat_archiver

    @property
    def ok(self) -> bool:
        return all(check.ok or check.warning for check in self.checks)

    @property
    def problems(self) -> list[SettingCheck]:
        return [check for check in self.checks if not check.ok and not check.warning]


def pitr_archive_command(*, python: str | None = None) -> str:
    """The archive_command that sends each WAL file to `archive_wal`."""
    return f"{shlex.quote(python or sys.executable)} {shlex.quote(str(MANAGE_PY))} archive_wal %p %f"


def pitr_restore_command(*, cluster_id: str, storage: str, python: str | None = None) -> str:
    return (
        f"{shlex.quote(python or sys.executable)} {shlex.quote(str(MANAGE_PY))} restore_wal %f %p "
        f"--cluster-id {cluster_id} --storage {storage}"
    )


def pitr_settings_check(*, using: str = DEFAULT_DB_ALIAS, python: str | None = None) -> PitrSettingsReport:
    """Reads the server's WAL settings and says which are wrong for PITR, with the fix for each."""
    wanted_command = pitr_archive_command(python=python)
    with server_cursor(using) as cursor:
        cursor.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('wal_level', 'archive_mode', 'archive_command', 'archive_timeout', 'max_wal_senders')"
        )
        values = dict(cursor.fetchall())
        cursor.execute("SELECT archived_count, last_archived_wal, failed_count, last_failed_wal FROM pg_stat_archiver")
        columns = ("archived_count", "last_archived_wal", "failed_count", "last_failed_wal")
        archiver = dict(zip(columns, cursor.fetchone(), strict=True))
    command = values.get("archive_command", "")
    checks = [
        SettingCheck(
            "wal_level",
            values["wal_level"],
            "replica or logical",
            values["wal_level"] in ("replica", "logical"),
            "ALTER SYSTEM SET wal_level = 'replica';  -- then restart",
        ),
        SettingCheck(
            "archive_mode",
            values["archive_mode"],
            "on",
            values["archive_mode"] in ("on", "always"),
            "ALTER SYSTEM SET archive_mode = 'on';  -- then restart",
        ),
        SettingCheck(
            "archive_command",
            command,
            "… archive_wal %p %f",
            "archive_wal" in command and "%p" in command and "%f" in command,
            f"ALTER SYSTEM SET archive_command = {_sql_literal(wanted_command)};  -- then SELECT pg_reload_conf()",
        ),
        SettingCheck(
            "max_wal_senders",
            values["max_wal_senders"],
            "at least 1 (pg_basebackup)",
            int(values["max_wal_senders"]) > 0,
            "ALTER SYSTEM SET max_wal_senders = 10;  -- then restart",
        ),
        SettingCheck(
            "archive_timeout",
            values["archive_timeout"],
            "> 0 (bounds how much recent WAL a lost server takes with it)",
            int(values["archive_timeout"]) > 0,
            "ALTER SYSTEM SET archive_timeout = '5min';  -- then SELECT pg_reload_conf()",
            warning=True,
        ),
    ]
    return PitrSettingsReport(checks=checks, archive_command=wanted_command, archiver=archiver)


def basebackup_tool() -> str | None:
    """pg_basebackup on PATH, else Debian's server package location (not on PATH there)."""
    tool = shutil.which("pg_basebackup") or "/usr/lib/postgresql/15/bin/pg_basebackup"
    return tool if Path(tool).exists() else None


def run_basebackup(params: dict, workdir: Path, *, label: str, progress: Progress | None) -> str:
    tool = basebackup_tool()
    if tool is None:
        raise PitrError("pg_basebackup not found; install the PostgreSQL client tools.")
    command = [
        tool,
        "-h", str(params["host"]), "-p", str(params["port"]), "-U", params["user"],
        "-D", str(workdir), "-Ft", "-z", "-X", "fetch", "--checkpoint=fast", "--no-password", "-l", label, "-P",
    ]  # fmt: skip
    env = {**os.environ, "PGPASSWORD": params["password"] or ""}  # the password never on the command line
    with child_popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as child:
        stderr = _follow_progress(child.stderr, progress)
    if child.returncode != 0:
        detail = ([line for line in stderr.splitlines() if line.strip() and "kB (" not in line] or ["no output"])[-1]
        raise PitrError(f"pg_basebackup failed: {detail.strip()}")
    version = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    return version.stdout.strip()


def _follow_progress(stream, progress: Progress | None) -> str:
    """Reads pg_basebackup's -P lines ("1234/5678 kB (21%), 0/1 tablespace", \r-separated) as they come."""
    seen, pending = [], b""
    while chunk := stream.read1(4096):
        pending += chunk
        *lines, pending = re.split(rb"[\r\n]", pending)
        for line in lines:
            text = line.decode(errors="replace")
            seen.append(text)
            match = _PROGRESS.match(text.strip())
            if match and progress:
                progress("base backup (kB)", int(match["done"]), max(int(match["total"]), int(match["done"])))
    seen.append(pending.decode(errors="replace"))
    return "\n".join(seen[-50:])


_PROGRESS = re.compile(r"^(?P<done>\d+)/(?P<total>\d+) kB")


def server_params(using: str) -> dict:
    database = settings.DATABASES.get(using)
    if database is None:
        raise PitrError(f"No database alias {using!r} in settings.DATABASES.")
    if "postgresql" not in database["ENGINE"]:
        raise PitrError(f"PITR needs PostgreSQL; database {using!r} is {database['ENGINE'].rsplit('.', 1)[-1]}.")
    return {
        "host": database.get("HOST") or "localhost",
        "port": int(database.get("PORT") or 5432),
        "user": database.get("USER") or "postgres",
        "password": database.get("PASSWORD") or "",
        "dbname": database.get("NAME") or "postgres",
    }


@contextmanager
def server_cursor(using: str) -> Iterator:
    """A short autocommit connection of its own: settings are server-wide, not the app's transaction."""
    params = server_params(using)
    try:
        connection = psycopg2.connect(connect_timeout=10, **params)
    except psycopg2.Error as exc:
        raise PitrError(f"Cannot connect to PostgreSQL at {params['host']}:{params['port']}: {exc}") from exc
    connection.autocommit = True
    try:
        yield connection.cursor()
    finally:
        connection.close()


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
