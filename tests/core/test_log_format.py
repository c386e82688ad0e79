"""LOG_FORMAT=auto (the default): plain lines for a person at a terminal, JSON for log collectors."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

from tests.dbops.commandline import ROOT, sqlite_environment

LOG_ONE_LINE = "import django; django.setup(); import logging; logging.getLogger('dbops.t').warning('hello %s', 42)"


def child_env(tmp_path, **overrides) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "LOG_FORMAT")}
    for name, value in {**sqlite_environment(tmp_path), **overrides}.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def stderr_through_a_terminal(env) -> str:
    leader, follower = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-c", LOG_ONE_LINE], cwd=ROOT, env=env, stderr=follower, stdout=subprocess.DEVNULL
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    assert process.returncode == 0
    return b"".join(chunks).decode()


def stderr_through_a_pipe(env) -> str:
    process = subprocess.run([sys.executable, "-c", LOG_ONE_LINE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert process.returncode == 0, process.stderr
    return process.stderr


def test_auto_is_text_on_a_terminal_and_json_in_a_pipe(tmp_path):
    env = child_env(tmp_path, DJANGO_SETTINGS_MODULE="multipult.settings")
    on_terminal = stderr_through_a_terminal(env).strip()
    assert on_terminal.endswith("WARNING dbops.t hello 42") and not on_terminal.startswith("{")

    piped = json.loads(stderr_through_a_pipe(env).strip())
    assert piped["message"] == "hello 42" and piped["level"] == "WARNING" and piped["logger"] == "dbops.t"


@pytest.mark.parametrize(("log_format", "is_json"), [("json", True), ("text", False)])
def test_an_explicit_format_wins_over_the_terminal(tmp_path, log_format, is_json):
    env = child_env(tmp_path, DJANGO_SETTINGS_MODULE="multipult.settings", LOG_FORMAT=log_format)
    on_terminal = stderr_through_a_terminal(env).strip()
    assert on_terminal.startswith("{") is is_json
