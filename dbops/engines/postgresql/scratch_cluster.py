"""Scratch clusters for proving a base backup works: pg_verifybackup on the unpacked backup and its
backup_manifest, then WAL replay in a throwaway server started on the unpacked directory itself
(no initdb), which must reach a consistent state before it is stopped and removed.

The server runs as the postgres OS user when we are root (PostgreSQL refuses root), listens on a
Unix socket in a private folder only (listen_addresses = ''), trusts only that socket through an
hba file of its own, and never archives.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2

from dbops.engines.postgresql import tools
from dbops.engines.postgresql.server import conf_literal
from dbops.exceptions import PitrError

DB_OWNER = "postgres"  # the OS user PostgreSQL runs as when we are root
SERVER_LOG = "server.log"
USER_TABLES_COUNT = (
    "SELECT count(*) FROM pg_class WHERE relkind IN ('r', 'p') AND relnamespace NOT IN "
    "(SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog', 'information_schema', 'pg_toast'))"
)


def server_tool(name: str, *, major: str | None = None) -> str:
    """A PostgreSQL program of the data directory's own major version where there is one."""
    return tools.tool_require(name, error=PitrError, major=major)


# --- pg_verifybackup -------------------------------------------------------------------------------


def basebackup_manifest_verify(data_dir: Path, *, manifest_path: Path) -> list[str]:
    """pg_verifybackup: every file against backup_manifest (sizes, checksums), and the WAL the backup
    needs (shipped in its pg_wal by -X fetch) parsed with pg_waldump. Returns the problems found."""
    major = _major_of(data_dir)
    command = [server_tool("pg_verifybackup", major=major), "--manifest-path", str(manifest_path), str(data_dir)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)
    if result.returncode == 0:
        return []
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    problems = [line.removeprefix("pg_verifybackup: ").removeprefix("error: ") for line in lines]
    return [f"pg_verifybackup: {problem}" for problem in problems] or [
        f"pg_verifybackup exited with {result.returncode} and no message"
    ]


def _major_of(data_dir: Path) -> str | None:
    version_file = data_dir / "PG_VERSION"
    return version_file.read_text().strip() if version_file.is_file() else None


# --- scratch server --------------------------------------------------------------------------------


@contextmanager
def scratch_workspace() -> Iterator[Path]:
    """A private folder for one scratch cluster (data directory, socket, log), readable by the server's
    OS user; removed afterwards, with whatever a stopped server's children still wrote."""
    root = Path(tempfile.mkdtemp(prefix="dbops-scratch-cluster-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, DB_OWNER, DB_OWNER)
        yield root
    finally:
        for _ in range(50):  # an archive/restore_command child can outlive an immediate stop by a moment
            shutil.rmtree(root, ignore_errors=True)
            if not root.exists():
                break
            time.sleep(0.1)


@dataclass
class ScratchRecovery:
    replay_lsn: str  # where replay stopped (paused)
    reached_end: bool  # replay_lsn is at or past the backup's end LSN
    database_tables: int  # tables in the backup's database, read from the recovered catalog
    archive_segments_restored: int  # WAL files the server fetched through restore_command
    log_tail: str
    last_replayed_at: datetime | None = None  # commit time of the last transaction replayed


def scratch_recovery_run(
    data_dir: Path,
    *,
    restore_command: str,
    end_lsn: str,
    database: str,
    users: list[str],
    timeout: float,
    target_time: datetime | None = None,
    while_paused: Callable[[Any], None] | None = None,
) -> ScratchRecovery:
    """Starts a server on an unpacked base backup with recovery_target = 'immediate' (replay stops once
        consistent, at the backup's end), or replaying up to `target_time`, and pauses there, checks it
        answers queries, hands its cursor to `while_paused` (to read from the recovered state), then stops it.
    Raises PitrError with the server's own reason when it does not get
        there within `timeout`."""
    workspace = data_dir.parent
    port = _free_port()
    hba = workspace / "scratch_hba.conf"
    hba.write_text("local all all trust\n")
    if not (data_dir / "postgresql.conf").exists():  # Debian keeps it in /etc: not part of the backup
        (data_dir / "postgresql.conf").write_text("")
    for stale in ("postmaster.pid", "postmaster.opts", "standby.signal"):
        (data_dir / stale).unlink(missing_ok=True)
    overrides = {
        "listen_addresses": "",
        "port": str(port),
        "unix_socket_directories": str(workspace),
        "hba_file": str(hba),
        "ssl": "off",
        "logging_collector": "off",
        "log_destination": "stderr",
        "shared_buffers": "32MB",
        "huge_pages": "off",
        "hot_standby": "on",
        "archive_mode": "off",
        "restore_command": restore_command,
        "recovery_target_action": "pause",
    }
    if target_time is None:
        overrides["recovery_target"] = "immediate"
    else:
        overrides["recovery_target_time"] = target_time.isoformat()
    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n# dbops scratch recovery (verification)\n")
        conf.writelines(f"{name} = {conf_literal(value)}\n" for name, value in overrides.items())
    (data_dir / "recovery.signal").touch()
    data_dir.chmod(0o700)
    _give_to_owner(workspace)
    pg_ctl = server_tool("pg_ctl", major=_major_of(data_dir))
    log = workspace / SERVER_LOG
    try:  # from here on the server may be running: always stopped below, even on Ctrl-C
        started = _as_owner(
            [pg_ctl, "-D", str(data_dir), "-l", str(log), "-w", "-t", str(max(1, int(timeout))), "start"],
            cwd=workspace,
            timeout=timeout + 60,
        )
        if started.returncode != 0:
            raise PitrError(f"The scratch server did not reach a consistent state: {_server_reason(log, started)}")
        deadline = time.monotonic() + timeout
        with _connect(workspace, port, database, users) as connection, connection.cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_is_in_recovery(), pg_is_wal_replay_paused(), pg_last_wal_replay_lsn()")
                in_recovery, paused, replay_lsn = cursor.fetchone()
                if not in_recovery or paused:
                    break
                if time.monotonic() > deadline:
                    raise PitrError(f"WAL replay did not reach the backup's end within {timeout:.0f}s.")
                time.sleep(0.2)
            cursor.execute("SELECT pg_wal_lsn_diff(%s, %s::pg_lsn) >= 0", [replay_lsn, end_lsn])
            reached_end = bool(cursor.fetchone()[0])
            cursor.execute(USER_TABLES_COUNT)
            tables = int(cursor.fetchone()[0])
            cursor.execute("SELECT pg_last_xact_replay_timestamp()")
            last_replayed_at = cursor.fetchone()[0]
            if while_paused is not None:
                while_paused(cursor)
    finally:
        _as_owner([pg_ctl, "-D", str(data_dir), "-m", "immediate", "-w", "-t", "60", "stop"], cwd=workspace, timeout=90)
    log_text = _read_log(log)
    return ScratchRecovery(
        replay_lsn=str(replay_lsn),
        reached_end=reached_end,
        database_tables=tables,
        archive_segments_restored=len(re.findall(r"restored log file \"[0-9A-F]{24}\" from archive", log_text)),
        log_tail="\n".join(log_text.splitlines()[-20:]),
        last_replayed_at=last_replayed_at,
    )


@contextmanager
def _connect(workspace: Path, port: int, database: str, users: list[str]) -> Iterator:
    """The first of `users` the recovered cluster knows (it holds the source's roles only)."""
    errors = []
    for user in dict.fromkeys(users):
        try:
            connection = psycopg2.connect(
                host=str(workspace), port=port, user=user, dbname=database, connect_timeout=30
            )
        except psycopg2.OperationalError as exc:
            errors.append(str(exc).strip().splitlines()[0])
            continue
        connection.autocommit = True
        try:
            yield connection
        finally:
            connection.close()
        return
    raise PitrError(f"The recovered scratch server refused every connection: {'; '.join(errors)}")


def _as_owner(command: list[str], *, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """pg_ctl refuses root: run it as the postgres OS user then (with our environment, which the
    server's restore_command needs for the storage settings)."""
    prefix = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", DB_OWNER, "--"] if os.geteuid() == 0 else []
    try:
        return subprocess.run([*prefix, *command], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise PitrError(f"{Path(command[0]).name} did not finish within {timeout:.0f}s.") from exc


def _give_to_owner(workspace: Path) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(DB_OWNER)
    for path in [workspace, *workspace.rglob("*")]:
        os.lchown(path, entry.pw_uid, entry.pw_gid)


def _server_reason(log: Path, started: subprocess.CompletedProcess) -> str:
    """The server's own words: its last FATAL/PANIC line, else pg_ctl's."""
    lines = _read_log(log).splitlines()
    fatal = [line for line in lines if re.search(r"\b(FATAL|PANIC):", line)]
    if fatal:
        return re.sub(r"^.*?\b(FATAL|PANIC):\s*", "", fatal[-1])
    detail = [line.strip() for line in (started.stderr + started.stdout).splitlines() if line.strip()]
    return detail[-1] if detail else f"pg_ctl exited with {started.returncode}"


def _read_log(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except OSError:
        return ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
