"""Only dbops/engines knows PostgreSQL or SQLite: no other module of dbops or multipult names their
drivers, their programs or `connection.vendor`. Fails listing every offending file:line."""

from __future__ import annotations

import re

import pytest

from tests.paths import ROOT

PROGRAMS = (
    "pg_dump",
    "pg_restore",
    "pg_basebackup",
    "pg_verifybackup",
    "psql",
    "pg_ctl",
    "initdb",
    "pg_controldata",
    "pg_waldump",
    "createdb",
    "dropdb",
    "pg_config",
)
FORBIDDEN = re.compile(
    r"connection\.vendor|\.vendor\s*[!=]=|\bpsycopg\d?\b|\bsqlite3\b|\b(?:" + "|".join(PROGRAMS) + r")\b"
)
# Exact strings allowed in one file each: the settings name Django's backend, and the default SQLite
# file keeps its name (renaming it would orphan existing databases).
ALLOWED = {
    "multipult/settings.py": ('"django.db.backends.sqlite3"',),
    "multipult/config.py": ('"var/multipult.sqlite3"',),
}
ENGINE_LAYER = ("dbops", "engines")


def offending_lines(relative_path: str, text: str) -> list[str]:
    allowed = ALLOWED.get(relative_path, ())
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        checked = line
        for exact in allowed:
            checked = checked.replace(exact, "")
        if FORBIDDEN.search(checked):
            found.append(f"{relative_path}:{number}: {line.strip()}")
    return found


def modules_outside_the_engine_layer() -> list[str]:
    paths = []
    for top in ("dbops", "multipult"):
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative.parts[:2] == ENGINE_LAYER or "migrations" in relative.parts:
                continue
            paths.append(relative.as_posix())
    return paths


def test_no_module_outside_the_engine_layer_knows_an_engine():
    modules = modules_outside_the_engine_layer()
    assert len(modules) > 100  # the walk really covers the code base
    offenders = [line for path in modules for line in offending_lines(path, (ROOT / path).read_text())]
    assert not offenders, "engine knowledge outside dbops/engines:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    "line",
    [
        "if connection.vendor == 'postgresql':",
        "fast = connections[using].vendor == 'postgresql'",
        "if self.connection.vendor != 'sqlite':",
        "import psycopg2",
        "from psycopg import sql",
        "with sqlite3.connect(path) as db:",
        'args = ["pg_dump", "--format=custom"]',
        "# the long part before pg_restore takes over",
        'help="Take a base backup with pg_basebackup."',
        "shutil.which('psql')",
        'engine = "django.db.backends.sqlite3"',  # allowed in the settings only, not here
    ],
)
def test_the_scan_catches_engine_knowledge(line):
    assert offending_lines("dbops/services/example.py", line)


@pytest.mark.parametrize(
    "path, line",
    [
        ("multipult/settings.py", '"ENGINE": "django.db.backends.sqlite3",'),
        ("multipult/config.py", 'EnvVar("SQLITE_PATH", str, "var/multipult.sqlite3", "SQLite file")'),
        ("dbops/services/example.py", "connector = get_connector(using)  # PostgreSQL or SQLite"),
        ("dbops/services/example.py", "pg_dumpall_like = 1; my_psql_notes = 2"),
    ],
)
def test_the_scan_allows_exactly_the_named_strings(path, line):
    assert offending_lines(path, line) == []


def test_an_allowed_string_is_allowed_only_where_it_is_named():
    assert offending_lines("multipult/settings.py", 'import sqlite3  # "django.db.backends.sqlite3"')
    assert offending_lines("dbops/checks.py", '"django.db.backends.sqlite3"')
