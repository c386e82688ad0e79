"""Fixtures of the fault-injection suite: real PostgreSQL, real child processes, real SIGKILL. Every
test gets its own temp folder for the children's work folders (TMPDIR) and leaves the server as it
found it, even when the product under test does not (so one failure does not take the suite down)."""

from __future__ import annotations

import pytest
from django.db import connection

from dbops.models import BackupRecord
from dbops.services.backups.create import backup_create
from multipult.core.models import Dictionary, DictionaryEntry, Role
from tests.faults import observe

SLOW_RESTORE_SQL = r"""
CREATE FUNCTION faults_slow_in_restores(value integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    -- Sleeps only in the scratch copies restores and verifications load: there rows take %(seconds)s s each.
    IF current_database() ~ '_(restoring|verify)_[0-9]{14}$' AND value <= %(sleepy_rows)s THEN
        PERFORM pg_sleep(%(seconds)s);
    END IF;
    RETURN value IS NOT NULL;
END $$;
CREATE TABLE faults_slow (id integer CHECK (faults_slow_in_restores(id)));
INSERT INTO faults_slow SELECT generate_series(1, 120);
"""
BULKY_SQL = """
CREATE TABLE faults_bulk (id integer PRIMARY KEY, payload text NOT NULL);
INSERT INTO faults_bulk SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 300000) g;
"""
CLEANUP_SQL = """
DROP TABLE IF EXISTS faults_slow;
DROP FUNCTION IF EXISTS faults_slow_in_restores(integer);
DROP TABLE IF EXISTS faults_bulk;
"""


def data_state() -> dict:
    """What must survive every fault: the test database's rows."""
    return {
        "roles": sorted(Role.objects.values_list("name", flat=True)),
        "entries": DictionaryEntry.objects.count(),
    }


@pytest.fixture
def fault_server(transactional_db):
    """Repairs what a failing product would leave (the test database missing, scratch databases,
    helper tables) before pytest-django flushes the database."""
    yield
    connection.close()  # a restore may have ended this session
    target = connection.settings_dict["NAME"]
    maintenance = observe.server()
    try:
        with maintenance.cursor() as cursor:
            kept = observe.databases("_pre_restore_")
            if not observe.database_exists(target):
                candidates = kept or observe.databases("_restoring_")
                cursor.execute(f'ALTER DATABASE "{candidates[-1]}" RENAME TO "{target}"')
            for name in (
                observe.databases("_restoring_") + observe.databases("_verify_") + observe.databases("_pre_restore_")
            ):
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        maintenance.close()
    with connection.cursor() as cursor:
        cursor.execute(CLEANUP_SQL)


@pytest.fixture
def work_root(tmp_path):
    """The children's TMPDIR: where their dbops-work-* folders go."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


@pytest.fixture
def fault_env(fault_server, test_db_env, backup_dir, work_root) -> dict:
    """Environment of the child processes: the test database, this test's backup folder and TMPDIR."""
    return {
        **test_db_env,
        "BACKUP_DIR": str(backup_dir),
        "TMPDIR": str(work_root),
        "S3_BACKUP_BUCKET": None,
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def original_data(fault_server) -> dict:
    """A few committed rows; returns their state."""
    Role.objects.create(name="original-role")
    dictionary = Dictionary.objects.create(name="faults")
    DictionaryEntry.objects.bulk_create([DictionaryEntry(dictionary=dictionary, key=f"k{i}") for i in range(40)])
    return data_state()


def _backup_loading_slowly(*, seconds: float, sleepy_rows: int) -> BackupRecord:
    with connection.cursor() as cursor:
        cursor.execute(SLOW_RESTORE_SQL % {"seconds": seconds, "sleepy_rows": sleepy_rows})
    backup_record = backup_create(tag="slow")
    Role.objects.create(name="made-after-the-backup")  # so the original and the restored data differ
    return backup_record


@pytest.fixture
def slow_backup(fault_env, original_data) -> BackupRecord:
    """A backup whose restore (or restore test) loads for a minute: 120 rows of half a second each."""
    return _backup_loading_slowly(seconds=0.5, sleepy_rows=120)


@pytest.fixture
def pausing_backup(fault_env, original_data) -> BackupRecord:
    """A backup whose restore pauses 3 s in its first row, then loads at full speed."""
    return _backup_loading_slowly(seconds=3, sleepy_rows=1)


@pytest.fixture
def bulky_backup(fault_env, original_data) -> BackupRecord:
    """A backup with ~20 MB of dump, so decoding it takes many scheduler slices."""
    with connection.cursor() as cursor:
        cursor.execute(BULKY_SQL)
    return backup_create(tag="bulky")


@pytest.fixture(autouse=True)
def no_shared_s3(settings):
    """Backups taken in-process stay local, as in the rest of the suite."""
    settings.STORAGES = {name: value for name, value in settings.STORAGES.items() if name != "backups_s3"}
    settings.S3_BACKUP_BUCKET = None
