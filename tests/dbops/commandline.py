"""Runs management commands in a child process, for what only a real process shows: exit codes,
stderr, TTY detection and the environment a command reads. (In-process: tests/commands.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.paths import ROOT


def child_environment(env: dict[str, str | None] | None = None) -> dict[str, str]:
    """The current environment plus `env`, where None removes a variable."""
    child_env = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    return child_env


def run_manage(
    *args: str, env: dict[str, str | None] | None = None, stdin: str | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    """`python manage.py ARGS` with the current environment plus `env` (None removes a variable)."""
    return run_script(str(ROOT / "manage.py"), *args, env=env, stdin=stdin, cwd=cwd)


def run_script(
    script: str, *args: str, env: dict[str, str | None] | None = None, stdin: str | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    """`python SCRIPT ARGS` (in the project folder unless `cwd`), with the current environment plus `env`."""
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=cwd,
        env=child_environment(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_manage(*args: str, env: dict[str, str | None]) -> subprocess.Popen:
    """`python manage.py ARGS` started, not waited for (output captured): for a test that kills it."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=child_environment(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sqlite_environment(folder: Path) -> dict[str, str | None]:
    """Environment for a child process on a fresh embedded SQLite file in `folder` (no servers)."""
    return {
        "DB_HOST": None,
        "REDIS_HOST": None,
        "S3_BACKUP_BUCKET": None,
        "S3_ENDPOINT_URL": None,
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "SQLITE_PATH": str(folder / "db.sqlite3"),
        "BACKUP_DIR": str(folder / "backups"),
    }


def child_database_env() -> dict[str, str]:
    """DB_NAME and OPS_DB_NAME of this run's test databases, for a child process. Both are named: the
    operations database's test name is not always DB_NAME + "_ops" (pytest-xdist suffixes each name)."""
    from django.db import connection, connections

    from dbops.conf import operations_alias

    return {
        "DB_NAME": connection.settings_dict["NAME"],
        "OPS_DB_NAME": connections[operations_alias()].settings_dict["NAME"],
    }
