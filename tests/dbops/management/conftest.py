"""Runs management commands in a child process, for what only a real process shows: exit codes,
stderr, TTY detection and the environment a command reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def run_manage(*args: str, env: dict[str, str | None] | None = None, stdin: str | None = None):
    """`python manage.py ARGS` with the current environment plus `env` (None removes a variable)."""
    child_env = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def test_db_env(django_db_setup, django_db_blocker):
    """Environment that points a child process at the (committed state of the) test database."""
    from django.db import connection

    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
    return {"DB_NAME": name}


@pytest.fixture
def sqlite_env(tmp_path):
    """Environment for a child process on a fresh embedded SQLite file (no servers)."""
    return {
        "DB_HOST": None,
        "REDIS_HOST": None,
        "S3_BACKUP_BUCKET": None,
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "BACKUP_DIR": str(tmp_path / "backups"),
    }
