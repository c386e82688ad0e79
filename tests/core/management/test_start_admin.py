"""start_admin in a child process on a fresh embedded SQLite database (no servers): migrated, a
superuser from DJANGO_SUPERUSER_* (or a refusal naming them), default schedules and policy, and the
admin served, styled, on 127.0.0.1 at the URL it prints."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request

from tests.dbops.commandline import child_environment, run_manage, sqlite_environment
from tests.paths import ROOT
from tests.ports import unused_port

SUPERUSER = {
    "DJANGO_SUPERUSER_USERNAME": "operator",
    "DJANGO_SUPERUSER_EMAIL": "operator@example.com",
    "DJANGO_SUPERUSER_PASSWORD": "a-long-enough-passphrase-9",
}


def _rows(path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path)) as database:
        return database.execute(sql).fetchall()


def test_one_command_migrates_makes_the_superuser_and_the_default_schedules(tmp_path):
    environment = sqlite_environment(tmp_path) | SUPERUSER | {"DEBUG": None}

    first = run_manage("start_admin", "--no-serve", "--port", "8123", env=environment)

    assert first.returncode == 0, first.stderr
    assert "The admin: http://127.0.0.1:8123/admin/  (log in as operator)" in first.stdout
    assert _rows(tmp_path / "db.sqlite3", "SELECT username FROM core_user WHERE is_superuser") == [("operator",)]
    operations = tmp_path / "db-ops.sqlite3"
    tasks = {name for (name,) in _rows(operations, "SELECT name FROM django_celery_beat_periodictask")}
    assert {"dbops: nightly backup", "dbops: nightly retention", "dbops: weekly restore test"} <= tasks
    assert _rows(operations, "SELECT name FROM dbops_retentionpolicy") == [("default",)]

    # again: nothing made twice, the existing superuser named (even when the variables name another)
    second = run_manage("start_admin", "--no-serve", env=environment | {"DJANGO_SUPERUSER_USERNAME": "someone"})
    assert second.returncode == 0, second.stderr
    assert "(log in as operator)" in second.stdout
    assert "0 created" in second.stdout
    assert len(_rows(tmp_path / "db.sqlite3", "SELECT id FROM core_user")) == 1


def test_without_a_superuser_or_a_terminal_it_says_what_to_set(tmp_path):
    result = run_manage("start_admin", "--no-serve", env=sqlite_environment(tmp_path), stdin="")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "CommandError: No superuser exists yet and none can be asked for here: set DJANGO_SUPERUSER_USERNAME, "
        "DJANGO_SUPERUSER_EMAIL, DJANGO_SUPERUSER_PASSWORD, or run this at a terminal to be prompted."
    )


def test_a_bad_port_is_refused_before_any_work(tmp_path):
    result = run_manage("start_admin", "--port", "70000", env=sqlite_environment(tmp_path))

    assert result.returncode == 1
    assert "--port 70000 is not a TCP port (1-65535)." in result.stderr
    assert not (tmp_path / "db.sqlite3").exists() or not _rows(
        tmp_path / "db.sqlite3", "SELECT name FROM sqlite_master WHERE name = 'core_user'"
    )


def test_it_serves_the_styled_admin_at_the_url_it_prints(tmp_path):
    port = unused_port()
    environment = child_environment(sqlite_environment(tmp_path) | SUPERUSER | {"DEBUG": None})
    process = subprocess.Popen(
        [sys.executable, "manage.py", "start_admin", "--port", str(port)],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        printed = ""
        while "The admin:" not in printed:
            line = process.stdout.readline()
            assert line, f"start_admin ended before printing the URL:\n{printed}"
            printed += line
        url = re.search(r"The admin: (\S+)", printed).group(1)
        assert url == f"http://127.0.0.1:{port}/admin/"
        login_page = _get_when_up(url.replace("/admin/", "/admin/login/"))
        stylesheet = re.search(r'href="(/static/admin/css/base\.[0-9a-f]+\.css)"', login_page).group(1)
        assert "--body-bg" in _get_when_up(f"http://127.0.0.1:{port}{stylesheet}")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _get_when_up(url: str) -> str:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  (loopback)
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
