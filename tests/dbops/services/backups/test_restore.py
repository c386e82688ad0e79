"""restore_db / backup_restore on the real PostgreSQL: the test database itself is restored (swapped
by rename) and must be intact and usable afterwards; bad input leaves everything as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.core.management.base import CommandError
from django.db import connection

from dbops.engines import get_connector
from dbops.exceptions import RestoreError
from dbops.models import BackupRecord
from dbops.services.backups.create import backup_create
from dbops.services.backups.restore import backup_restore
from multipult.core.models import AuditLog, Concept, DictionaryEntry, Role
from tests.commands import command_error, on_a_terminal, run_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drop_pre_restore_databases")]


def state() -> dict:
    """Everything a bad input must leave unchanged: data, catalog, and backup files on disk."""
    return {
        "entries": DictionaryEntry.objects.count(),
        "roles": sorted(Role.objects.values_list("name", flat=True)),
        "records": sorted(BackupRecord.objects.values_list("pk", "status")),
        "databases": get_connector().pre_restore_databases(),
    }


def files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def test_full_restore_swaps_in_the_backup_and_keeps_later_backups(backup_dir, some_data):
    first = backup_create(tag="first")
    DictionaryEntry.objects.all().delete()
    Role.objects.create(name="made-after-first")
    later = backup_create(tag="later")

    output = run_command("restore_db", "--backup-id", str(first.pk), "--confirm", "--jobs", "2")

    # The data is back as it was at the first backup...
    assert DictionaryEntry.objects.count() == 50
    assert not Role.objects.filter(name="made-after-first").exists()
    # ...the old database is kept aside, and the safety backup is named.
    kept = get_connector().pre_restore_databases()
    assert len(kept) == 1 and kept[0] in output
    safety = BackupRecord.objects.get(kind=BackupRecord.Kind.SAFETY)
    assert f"Safety backup #{safety.pk}" in output
    # The catalog was re-synced from the manifests: the later backup and the safety backup still show,
    # and the restored backup's own row (dumped while it was running) says succeeded.
    statuses = dict(BackupRecord.objects.values_list("pk", "status"))
    assert statuses[first.pk] == statuses[later.pk] == statuses[safety.pk] == "succeeded"
    assert BackupRecord.objects.get(pk=later.pk).tag == "later"
    # New records get fresh ids above the re-synced ones.
    assert backup_create(tag="next").pk > safety.pk
    assert AuditLog.objects.filter(action="restore", entity_id=first.pk).exists()


def test_restore_refuses_without_confirm_and_says_what_it_would_do(backup_dir, some_data):
    backup_record = backup_create()
    before, before_files = state(), files(backup_dir)
    with pytest.raises(CommandError) as refused:
        run_command("restore_db", "--backup-id", str(backup_record.pk))
    assert "Would restore backup" in str(refused.value) and "--confirm" in str(refused.value)
    assert "safety backup" in str(refused.value)
    assert state() == before and files(backup_dir) == before_files


@pytest.mark.parametrize("damage", ["bit-flip", "truncate"])
def test_damaged_archive_is_refused_on_checksum_before_touching_anything(backup_dir, some_data, damage):
    backup_record = backup_create()
    artifact = Path(backup_record.location)
    data = bytearray(artifact.read_bytes())
    if damage == "bit-flip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) - 100]
    artifact.write_bytes(bytes(data))
    DictionaryEntry.objects.filter(key="k1").delete()
    before, before_files = state(), files(backup_dir)

    command_error("restore_db", "--backup-id", str(backup_record.pk), "--confirm", match="damaged")

    assert state() == before and files(backup_dir) == before_files  # no safety backup, no swap


def test_restore_from_plain_sql_file_made_by_backup_db(tmp_path, backup_dir, some_data):
    output = tmp_path / "backup.sql"
    run_command("backup_db", "--output", str(output))
    Concept.objects.all().delete()
    text = run_command("restore_db", "--input", str(output), "--confirm", "--no-safety-backup")
    assert Concept.objects.count() == 30
    assert "Safety backup" not in text
    assert not BackupRecord.objects.filter(kind="safety").exists()


def test_restore_only_some_tables(backup_dir, some_data):
    backup_record = backup_create()
    DictionaryEntry.objects.filter(key__in=["k1", "k2", "k3"]).delete()
    Concept.objects.filter(code="C1").delete()
    output = run_command(
        "restore_db", "--backup-id", str(backup_record.pk), "--tables", "core_dictionaryentry", "--confirm"
    )
    assert DictionaryEntry.objects.count() == 50
    assert not Concept.objects.filter(code="C1").exists()  # not restored: not in --tables
    assert get_connector().pre_restore_databases() == []  # table restores do not swap databases
    assert "core_dictionaryentry" in output
    # The id sequence was moved past the restored rows.
    DictionaryEntry.objects.create(dictionary=some_data["dictionary"], key="new")


def test_restore_unknown_table_is_refused(backup_dir, some_data):
    backup_record = backup_create()
    before = state()
    command_error(
        "restore_db",
        "--backup-id",
        str(backup_record.pk),
        "--tables",
        "no_such_table",
        "--confirm",
        match="not in the backup",
    )
    assert state() == before


def test_file_that_is_not_a_backup(tmp_path, backup_dir, some_data):
    bogus = tmp_path / "notes.sql"
    bogus.write_text("hello, this is not a database dump\n")
    before = state()
    command_error("restore_db", "--input", str(bogus), "--confirm", match="not a backup")
    assert state() == before


def test_unknown_backup_id(backup_dir, some_data):
    before = state()
    for bad in ("999999", "abc"):
        command_error("restore_db", "--backup-id", bad, "--confirm", match="No backup with id")
    assert state() == before


def test_missing_input_file(tmp_path, backup_dir, some_data):
    command_error("restore_db", "--input", str(tmp_path / "nope.dump"), "--confirm", match="does not exist")


def test_sqlite_backup_and_restore_through_the_connector(backup_dir, sqlite_alias):
    import sqlite3
    from contextlib import closing

    alias, path = sqlite_alias
    backup_record = backup_create(database=alias, compression="gzip")
    with closing(sqlite3.connect(path)) as db:
        db.execute("DELETE FROM item WHERE id > 10")
        db.commit()
    result = backup_restore(backup_record=backup_record, database=alias)
    assert get_connector(alias).table_counts() == {"item": 100, "tag": 7}
    assert result.safety_backup is not None and result.safety_backup.row_counts["item"] == 10


def test_restore_refuses_backup_from_another_engine(backup_dir, sqlite_alias, some_data):
    alias, _ = sqlite_alias
    sqlite_backup = backup_create(database=alias)
    before = state()
    command_error("restore_db", "--backup-id", str(sqlite_backup.pk), "--confirm", match="sqlite backup")
    assert state() == before
    assert connection.vendor == "postgresql"


@pytest.mark.parametrize("name", ["backup.sql", "backup.sql.zst", "backup.sql.gz", "backup.dump.zst"])
def test_truncated_backup_file_is_refused_before_touching_anything(tmp_path, backup_dir, some_data, name):
    output = tmp_path / name
    fmt = "custom" if ".dump" in name else "plain"
    run_command("backup_db", "--output", str(output), "--format", fmt)
    data = output.read_bytes()
    output.write_bytes(data[: len(data) * 2 // 3])
    Concept.objects.filter(code="C3").delete()
    before, before_files = state(), files(backup_dir)
    command_error("restore_db", "--input", str(output), "--confirm", match="truncated|damaged")
    assert state() == before and files(backup_dir) == before_files


def test_backup_file_with_manifest_is_checked_against_it(tmp_path, backup_dir, some_data):
    # A managed artifact copied elsewhere with its manifest: restore --input checks the SHA-256 first.
    backup_record = backup_create()
    copy = tmp_path / Path(backup_record.location).name
    data = bytearray(Path(backup_record.location).read_bytes())
    data[-10] ^= 0x04
    copy.write_bytes(bytes(data))
    manifest = Path(backup_record.location + ".manifest.json")
    (tmp_path / (copy.name + ".manifest.json")).write_bytes(manifest.read_bytes())
    before = state()
    command_error("restore_db", "--input", str(copy), "--confirm", match="damaged")
    assert state() == before


def test_sqlite_restore_of_some_tables(backup_dir, sqlite_alias):
    import sqlite3
    from contextlib import closing

    alias, path = sqlite_alias
    backup_record = backup_create(database=alias)
    with closing(sqlite3.connect(path)) as db:
        db.execute("DELETE FROM item")
        db.execute("DELETE FROM tag")
        db.commit()
    backup_restore(backup_record=backup_record, database=alias, tables=["item"], safety_backup=False)
    assert get_connector(alias).table_counts() == {"item": 100, "tag": 0}


def test_only_this_databases_pre_restore_copies_are_listed_and_dropped(db):
    connector = get_connector()
    stranger = f"{connector.database_name}_x_pre_restore_20260101000000"
    mine = f"{connector.database_name}_pre_restore_20260101000000"
    admin = connector._raw_connection("postgres")
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{stranger}"')
            cursor.execute(f'CREATE DATABASE "{mine}"')
        assert connector.pre_restore_databases() == [mine]
        with pytest.raises(RestoreError, match="not a pre-restore copy"):
            connector.drop_database(stranger)
        connector.drop_database(mine)
        assert connector.pre_restore_databases() == []
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{stranger}"')
            cursor.execute(f'DROP DATABASE IF EXISTS "{mine}"')
        admin.close()


@pytest.mark.parametrize("quiet", [False, True])
def test_restore_shows_decoding_progress_on_a_terminal_only(backup_dir, some_data, quiet):
    backup_record = backup_create(compression="zstd")
    args = ["--backup-id", str(backup_record.pk), "--tables", "core_concept", "--confirm"]
    output = on_a_terminal("restore_db", *args, *(["--quiet"] if quiet else []))
    assert ("restore: decoding:" in output) is not quiet
    # the artifact's size is known, so the bar counts towards it: percent and an ETA
    assert ("restore: decoding: 100%|" in output) is not quiet
    # Not a terminal: no progress line at all.
    assert "restore: decoding" not in run_command("restore_db", *args)


def test_decoding_reports_artifact_bytes_read_and_dump_bytes_written(backup_dir, some_data, tmp_path):
    from dbops.artifacts.reading import artifact_decode

    backup_record = backup_create(compression="gzip")
    calls: list[tuple[int, int]] = []
    decoded = artifact_decode(
        Path(backup_record.location), tmp_path, progress=lambda read, written: calls.append((read, written))
    )
    assert calls, "at least one progress report"
    assert calls == sorted(calls)  # monotonic
    assert calls[-1] == (backup_record.size_bytes, decoded.size_bytes)
