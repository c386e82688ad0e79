"""Fixtures for the dbops tests: a little real data, a throwaway SQLite alias (backup engine), and the
environment for commands run in a child process (operations commands)."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from django.db import connections

from multipult.core.models import Concept, Dictionary, DictionaryEntry, Role


@pytest.fixture(autouse=True)
def no_shared_s3(settings):
    """Tests use S3 only through the `s3_bucket` fixture (a bucket of their own), never the shared one."""
    settings.STORAGES = {name: value for name, value in settings.STORAGES.items() if name != "backups_s3"}
    settings.S3_BACKUP_BUCKET = None


@pytest.fixture
def some_data(db):
    """A few rows in several related tables (committed when the test is transactional)."""
    role = Role.objects.create(name="backup-tester", description="made by the backup tests")
    dictionary = Dictionary.objects.create(name="colours", description="for the backup tests")
    DictionaryEntry.objects.bulk_create(
        [DictionaryEntry(dictionary=dictionary, key=f"k{i}", value=f"colour number {i}") for i in range(50)]
    )
    Concept.objects.bulk_create([Concept(code=f"C{i}", name=f"concept {i}", description="x" * 200) for i in range(30)])
    return {"role": role, "dictionary": dictionary}


@pytest.fixture
def sqlite_alias(tmp_path):
    """A database alias on a temporary SQLite file with one table of 100 rows."""
    path = tmp_path / "scratch.sqlite3"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(
            "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
            "CREATE TABLE tag (id INTEGER PRIMARY KEY, label TEXT);"
        )
        db.executemany("INSERT INTO item (name) VALUES (?)", [(f"item {i}",) for i in range(100)])
        db.executemany("INSERT INTO tag (label) VALUES (?)", [(f"tag {i}",) for i in range(7)])
        db.commit()
    alias = "sqlite_scratch"
    scratch = {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    configured = connections.configure_settings({"default": dict(connections.settings["default"]), alias: scratch})
    connections.settings[alias] = configured[alias]
    yield alias, path
    connections[alias].close()
    del connections.settings[alias]
    if hasattr(connections._connections, alias):
        delattr(connections._connections, alias)


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder nobody can create files in: /sys for root (permissions do not stop root), else mode 0500."""
    import os
    from pathlib import Path

    if os.geteuid() == 0:
        yield Path("/sys")
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    yield folder
    folder.chmod(0o700)
