"""Runs management commands in a child process, for what only a real process shows: exit codes,
stderr, TTY detection and the environment a command reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.paths import ROOT


def run_manage(*args: str, env: dict[str, str | None] | None = None, stdin: str | None = None):
    """`python manage.py ARGS` with the current environment plus `env` (None removes a variable)."""
    return run_script("manage.py", *args, env=env, stdin=stdin)


def run_script(script: str, *args: str, env: dict[str, str | None] | None = None, stdin: str | None = None):
    """`python SCRIPT ARGS` in the project folder, with the current environment plus `env`."""
    child_env = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=ROOT,
        env=child_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
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
