"""Fixtures for the dbops tests that run commands in a child process."""

from __future__ import annotations

import pytest


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
