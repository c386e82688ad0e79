"""PostgreSQL server side of PITR: its WAL settings (checked, with the fix for each), its identity, and
pg_basebackup.

Server-wide queries run on the engine's maintenance connection (dbops.engines.postgresql.maintenance):
settings are server-wide facts, not part of the application's transaction.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg2
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from dbops import walspool
from dbops.conf import dbops_setting
from dbops.engines.postgresql import maintenance, tools
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


def server_python(python: str | None = None) -> str:
    """The interpreter the server runs our commands with: `python`, else DBOPS["PITR_PYTHON"], else this one."""
    return python or dbops_setting("PITR_PYTHON") or sys.executable


def pitr_archive_command(*, python: str | None = None) -> str:
    """The archive_command that sends each WAL file to `archive_wal`."""
    return f"{shlex.quote(server_python(python))} {shlex.quote(str(MANAGE_PY))} archive_wal %p %f"


def pitr_restore_command(*, cluster_id: str, storage: str, python: str | None = None) -> str:
    return (
        f"{shlex.quote(server_python(python))} {shlex.quote(str(MANAGE_PY))} restore_wal %f %p "
        f"--cluster-id {cluster_id} --storage {storage}"
    )


def pitr_settings_check(
    *, using: str = DEFAULT_DB_ALIAS, python: str | None = None, spool: str | None = None
) -> PitrSettingsReport:
    """Reads the server's WAL settings and says which are wrong for PITR, with the fix for each; with
    `spool`, the archive_command to configure is the asynchronous archiver's."""
    if spool:
        wanted_command = pitr_async_archive_command(spool=spool, python=python)
    else:
        wanted_command = pitr_archive_command(python=python)
    with server_cursor(using) as cursor:
        cursor.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('wal_level', 'archive_mode', 'archive_command', 'archive_timeout', 'max_wal_senders')"
        )
        values = dict(cursor.fetchall())
        cursor.execute(ARCHIVER_QUERY)
        archiver = dict(zip(ARCHIVER_COLUMNS, cursor.fetchone(), strict=True))
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
            "… archive_wal %p %f (or the asynchronous archiver's … walspool.py SPOOL %f)",
            "%f" in command and (("archive_wal" in command and "%p" in command) or "walspool.py" in command),
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


@dataclass
class WalSwitch:
    cluster_id: str
    segment: str  # the WAL file the switch completed: the one to see archived
    switched_at: datetime  # the server's clock


ARCHIVER_COLUMNS = (
    "archived_count", "last_archived_wal", "last_archived_time", "failed_count", "last_failed_wal", "last_failed_time",
)  # fmt: skip
ARCHIVER_QUERY = (
    "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time "
    "FROM pg_stat_archiver"
)


def server_wal_switch(*, using: str = DEFAULT_DB_ALIAS) -> WalSwitch:
    """Writes a restore point (so there is WAL to switch even on an idle server, as pgBackRest's check
    does) and switches to a new WAL file, which the archiver then archives."""
    with server_cursor(using) as cursor:
        try:
            cursor.execute("SELECT pg_create_restore_point('dbops pitr check')")
            cursor.execute(
                "SELECT system_identifier::text, pg_walfile_name(pg_switch_wal()), now() FROM pg_control_system()"
            )
        except psycopg2.Error as exc:
            raise PitrError(f"Cannot switch WAL on the server: {_first_line(exc)}") from exc
        cluster_id, segment, switched_at = cursor.fetchone()
    return WalSwitch(cluster_id=cluster_id, segment=segment, switched_at=switched_at)


def server_archiver_status(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, object]:
    """pg_stat_archiver: counts, and the last archived and last failed WAL file with their times."""
    with server_cursor(using) as cursor:
        cursor.execute(ARCHIVER_QUERY)
        return dict(zip(ARCHIVER_COLUMNS, cursor.fetchone(), strict=True))


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def run_basebackup(params: dict, workdir: Path, *, label: str, progress: Progress | None) -> str:
    tool = tools.tool_require("pg_basebackup", error=PitrError)
    command = [
        tool,
        "-h", str(params["host"]), "-p", str(params["port"]), "-U", params["user"],
        "-D", str(workdir), "-Ft", "-z", "-X", "fetch", "--checkpoint=fast", "--no-password", "-l", label, "-P",
    ]  # fmt: skip
    # The password only as PGPASSWORD in the child's environment, which holds nothing else of ours.
    env = tools.child_environment(params.get("settings"), password=params["password"], application_name="dbops")
    with tools.child_popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as child:
        stderr = _follow_progress(child.stderr, progress)
    if child.returncode != 0:
        errors = [line for line in stderr.splitlines() if line.strip() and "kB (" not in line]
        raise PitrError(tools.tool_failure(tool, child.returncode, "\n".join(errors[-5:])))
    return tools.tool_version_read(tools.tool_version_start(tool))


def server_start_command(data_dir: Path) -> str:
    """The shell command that starts a server on `data_dir` (pg_ctl's full path when it is off PATH)."""
    pg_ctl = tools.tool_path("pg_ctl") or "pg_ctl"
    return f"{shlex.quote(pg_ctl)} -D {shlex.quote(str(data_dir))} start"


@dataclass(frozen=True)
class ServerIdentity:
    cluster_id: str  # pg_control_system().system_identifier: the same for every copy of one cluster
    wal_segment_size: int
    server_version: str


def server_identity(using: str) -> ServerIdentity:
    with server_cursor(using) as cursor:
        cursor.execute("SELECT system_identifier::text FROM pg_control_system()")
        cluster_id = cursor.fetchone()[0]
        cursor.execute("SELECT setting::int FROM pg_settings WHERE name = 'wal_segment_size'")
        segment_size = cursor.fetchone()[0]
        cursor.execute("SHOW server_version")
        server_version = cursor.fetchone()[0]
    return ServerIdentity(cluster_id=cluster_id, wal_segment_size=segment_size, server_version=server_version)


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
        "settings": database,  # the whole entry: OPTIONS (sslmode...) reach the programs' environment too
    }


@contextmanager
def server_cursor(using: str) -> Iterator:
    """A cursor on the maintenance connection: settings are server-wide, not the app's transaction."""
    params = server_params(using)
    target = {**params["settings"], "HOST": params["host"], "PORT": params["port"], "USER": params["user"]}
    with maintenance.maintenance_session(target, error=PitrError) as connection, connection.cursor() as cursor:
        yield cursor


def conf_literal(value: str) -> str:
    """A quoted value for postgresql.conf / postgresql.auto.conf."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def server_wal_ready(data_dir: Path | str) -> list[str]:
    """The WAL files the server waits to see archived (pg_wal/archive_status/<name>.ready), oldest
    first: what an asynchronous archiver may push ahead of archive_command asking for each one."""
    status = Path(data_dir) / "pg_wal" / "archive_status"
    try:
        names = [entry.name.removesuffix(".ready") for entry in status.iterdir() if entry.name.endswith(".ready")]
    except FileNotFoundError as exc:
        raise PitrError(
            f"{status} does not exist: is {data_dir} a PostgreSQL data directory?", parameter="data_dir"
        ) from exc
    return sorted(names, key=lambda name: (not name.endswith(".history"), name))  # history files first


def server_wal_path(data_dir: Path | str, name: str) -> Path:
    return Path(data_dir) / "pg_wal" / name


def pitr_async_archive_command(*, spool: Path | str, python: str | None = None, wait_seconds: float = 60) -> str:
    """The archive_command of the asynchronous archiver: waits for the archiver's acknowledgement of %f
    in the spool (a script of the standard library only: no Django start-up), so the server keeps each
    segment until it is durable. `wait_seconds` bounds each wait (the server asks again after a failure)."""
    script = shlex.quote(str(Path(walspool.__file__).resolve()))
    return f"{shlex.quote(server_python(python))} {script} {shlex.quote(str(spool))} %f {wait_seconds:g}"


@dataclass
class RestorePoint:
    name: str
    cluster_id: str
    lsn: str
    created_at: datetime
    wal_file: str  # the segment holding it, switched so that it is archived now


def server_restore_point_create(*, using: str, name: str) -> RestorePoint:
    """pg_create_restore_point(name), then a WAL switch so the segment holding it reaches the archive."""
    with server_cursor(using) as cursor:
        try:
            cursor.execute(
                "SELECT system_identifier::text, pg_create_restore_point(%s)::text, now() FROM pg_control_system()",
                [name],
            )
            cluster_id, lsn, created_at = cursor.fetchone()
            cursor.execute("SELECT pg_walfile_name(pg_switch_wal())")
            wal_file = cursor.fetchone()[0]
        except psycopg2.Error as exc:
            raise PitrError(f"Cannot create the restore point {name!r}: {_first_line(exc)}") from exc
    return RestorePoint(name=name, cluster_id=cluster_id, lsn=lsn, created_at=created_at, wal_file=wal_file)
