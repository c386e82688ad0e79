"""Watching real processes and the real PostgreSQL server from a fault test: /proc for processes and
their open files, pg_stat_activity and pg_database over a maintenance connection."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg2
from django.db import connection

from dbops.engines.base import get_connector
from dbops.exceptions import BackupLockedError
from tests.dbops.commandline import run_manage

T = TypeVar("T")


def files(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its SHA-256: backups must come out of a fault byte for byte."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def wait_for(probe: Callable[[], T], *, what: str, timeout: float = 60.0, interval: float = 0.02) -> T:
    """Polls `probe` until it returns something truthy; fails the test naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def backup_lock_free() -> bool:
    """Whether this database's one-backup-or-restore-at-a-time lock can be taken now. After a holder is
    SIGKILLed the server ends its session (and the lock) only once it notices the closed socket."""
    try:
        with get_connector().lock():
            return True
    except BackupLockedError:
        return False


def alive(pid: int) -> bool:
    """Running (or stopped), not gone and not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def processes(name: str, *, mentioning: str) -> list[int]:
    """Live processes called `name` whose command line mentions `mentioning` (this test's folders)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        named = bool(command) and Path(command[0].decode(errors="replace")).name == name
        if named and any(mentioning.encode() in part for part in command) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def open_files(pid: int) -> list[str]:
    folder = Path(f"/proc/{pid}/fd")
    paths = []
    try:
        for fd in folder.iterdir():
            try:
                paths.append(os.readlink(fd))
            except OSError:
                continue
    except OSError:
        return []
    return paths


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: _state(pid) in ("T", "t", "Z", "X", ""), what=f"pid {pid} to stop", interval=0.001)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def step_until(pid: int, probe: Callable[[], bool], *, what: str, timeout: float = 60.0) -> None:
    """Runs the process in slices of a few milliseconds, stopped in between, until `probe` holds while it
    is stopped; it stays stopped, so what the probe saw is what a signal sent now will interrupt."""
    deadline = time.monotonic() + timeout
    while True:
        stop(pid)
        if probe():
            return
        if not alive(pid) or time.monotonic() > deadline:
            os.kill(pid, signal.SIGCONT)
            raise AssertionError(f"never saw {what} (pid {pid} {'ended' if not alive(pid) else 'timed out'})")
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.003)


def listed_backup_ids(env: dict[str, str | None]) -> tuple[list[int], str]:
    """`list_backups --json` in a child process: the ids it lists, and its stderr (the repair lines)."""
    result = run_manage("list_backups", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return [item["id"] for item in json.loads(result.stdout)["backups"]], result.stderr


def kill_and_reap(child: subprocess.Popen) -> None:
    child.kill()  # SIGKILL: no handler, no cleanup, no finally blocks
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL


def server(dbname: str = "postgres") -> psycopg2.extensions.connection:
    """An autocommit connection to the test server (its maintenance database unless told otherwise)."""
    settings_dict = connection.settings_dict
    maintenance = psycopg2.connect(
        dbname=dbname,
        host=settings_dict["HOST"],
        port=settings_dict["PORT"],
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"],
    )
    maintenance.autocommit = True
    return maintenance


def query(sql: str, params: list | tuple = (), *, dbname: str = "postgres") -> list[tuple]:
    maintenance = server(dbname)
    try:
        with maintenance.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        maintenance.close()


def databases(infix: str) -> list[str]:
    """The test database's `<name><infix>*` databases (`_restoring_`, `_verify_`, `_pre_restore_`)."""
    name = connection.settings_dict["NAME"]
    rows = query("SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", [name + infix])
    return [row[0] for row in rows]


def database_exists(name: str) -> bool:
    return bool(query("SELECT 1 FROM pg_database WHERE datname = %s", [name]))


def backends(*, datname_prefix: str = "", query_prefix: str = "", wait_event: str = "") -> list[int]:
    """pids of server sessions matching all the given filters."""
    rows = query(
        "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        " AND starts_with(coalesce(datname, ''), %s) AND starts_with(query, %s)"
        " AND (%s = '' OR wait_event = %s OR wait_event_type = %s)",
        [datname_prefix, query_prefix, wait_event, wait_event, wait_event],
    )
    return [row[0] for row in rows]
