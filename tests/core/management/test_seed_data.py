"""The seed_data command: dry run, bad input and the embedded SQLite path."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from multipult.core.models import AuditLog, Concept, Dictionary, DictionaryEntry, Role, StoredFile, User
from multipult.core.services.seeding import seed_plan
from tests.commands import run_command
from tests.dbops.commandline import run_manage

DOMAIN_MODELS = (Role, User, User.roles.through, Concept, Dictionary, DictionaryEntry, StoredFile, AuditLog)


def _counts() -> dict[str, int]:
    return {model._meta.db_table: model.objects.count() for model in DOMAIN_MODELS}


@pytest.mark.django_db
def test_dry_run_prints_the_plan_and_writes_nothing():
    before = _counts()
    text = run_command("seed_data", "--dry-run", "--scale", "3", "--seed", "4")

    assert _counts() == before
    assert f"Would create {seed_plan(scale=3).total:,} rows" in text
    assert "audit_logs" in text and "Nothing was written" in text


@pytest.mark.django_db
def test_command_reports_counts_and_is_quiet_off_a_tty():
    text = run_command("seed_data", "--scale", "0.5", "--seed", "2")
    assert "\r" not in text  # progress only on a TTY
    assert f"Created {seed_plan(scale=0.5).total:,} rows" in text
    assert User.objects.count() == seed_plan(scale=0.5).counts["users"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "0"], "--scale: The scale must be a positive number"),
        (["--scale", "-2"], "--scale: The scale must be a positive number"),
        (["--scale", "1e9"], "too large"),
        (["--scale", "abc"], "invalid float value"),
        (["--seed", "x"], "invalid int value"),
    ],
)
def test_bad_input_gives_one_readable_line_and_exit_non_zero(args, message, sqlite_env):
    result = run_manage("seed_data", *args, env=sqlite_env)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_sqlite_seed_is_reproducible_and_matches_the_plan(tmp_path, sqlite_env):
    # Given two SQLite databases migrated identically
    migrate = run_manage("migrate", "--no-input", "-v", "0", env=sqlite_env)
    assert migrate.returncode == 0, migrate.stderr
    first = tmp_path / "db.sqlite3"
    second = tmp_path / "copy.sqlite3"
    shutil.copy(first, second)

    # When both are seeded with the same seed
    for path in (first, second):
        result = run_manage("seed_data", "--scale", "0.5", "--seed", "42", env={**sqlite_env, "SQLITE_PATH": str(path)})
        assert result.returncode == 0, result.stderr
        assert "insert" in result.stdout

    # Then they hold the same rows, in the planned numbers
    plan = seed_plan(scale=0.5)
    tables = {
        "core_user": "users",
        "core_user_roles": "user_roles",
        "core_concept": "concepts",
        "core_dictionary": "dictionaries",
        "core_dictionaryentry": "dictionary_entries",
        "core_storedfile": "stored_files",
        "core_auditlog": "audit_logs",
    }
    with sqlite3.connect(first) as db_a, sqlite3.connect(second) as db_b:
        for table, label in tables.items():
            rows_a = db_a.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()  # noqa: S608
            rows_b = db_b.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()  # noqa: S608
            assert len(rows_a) == plan.counts[label], table
            assert rows_a == rows_b, table
        assert db_a.execute("SELECT count(*) FROM core_role").fetchone()[0] == plan.counts["roles"]
        # Django reads the seeded timestamps and JSON back (format matches what the ORM writes).
        timestamp, changes = db_a.execute("SELECT timestamp, changes FROM core_auditlog LIMIT 1").fetchone()
        assert timestamp.startswith(("2024-", "2025-")) and changes.startswith("{")


@pytest.mark.django_db
def test_dry_run_does_not_count_roles_that_exist():
    Role.objects.create(name="admin")
    text = run_command("seed_data", "--dry-run")
    roles_line = next(line for line in text.splitlines() if line.strip().startswith("roles"))
    assert roles_line.split()[-1] == str(seed_plan(scale=1).counts["roles"] - 1)


def test_progress_is_shown_on_a_terminal_only(sqlite_env):
    """A real pseudo-terminal as stdout: progress lines appear; with --quiet they do not."""
    import os
    import pty
    import re
    import subprocess
    import sys

    from tests.dbops.commandline import ROOT

    env = {key: value for key, value in {**os.environ, **sqlite_env}.items() if value is not None}
    assert (
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, timeout=120
        ).returncode
        == 0
    )

    def run_on_tty(*args: str) -> str:
        leader, follower = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "manage.py", "seed_data", "--scale", "0.2", *args],
            cwd=ROOT, env=env, stdout=follower, stderr=subprocess.PIPE,
        )  # fmt: skip
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        assert process.wait(timeout=120) == 0
        return b"".join(chunks).decode()

    shown = run_on_tty()
    audit_logs = seed_plan(scale=0.2).counts["audit_logs"]
    # a tqdm bar: percent, counts and the elapsed<remaining time
    assert re.search(rf"\raudit_logs: 100%\|[^\r\n]*\| {audit_logs}/{audit_logs} \[\d\d:\d\d<", shown), shown
    quiet = run_on_tty("--quiet")
    assert "\r" not in quiet.replace("\r\n", "\n") and "Created" in quiet
