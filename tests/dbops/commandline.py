"""Runs management commands in a child process, for what only a real process shows: exit codes,
stderr, TTY detection and the environment a command reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
