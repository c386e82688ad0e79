"""Parallel dumps (`backup_advanced --jobs N`): pg_dump -Fd -j N into a work folder, packed into one tar
artifact (compressed on the way) that restore_db --jobs, verify_backup and the stock tools read."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
import zstandard
from django.db import connection

from dbops.engines import get_connector
from dbops.engines.postgresql import PostgreSQLConnector, tools
from dbops.models import BackupRecord
from multipult.core.models import Concept, DictionaryEntry
from tests.commands import command_error, run_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drop_pre_restore_databases")]


@pytest.fixture
def system_temp(tmp_path, monkeypatch):
    """The system temp folder (where work folders go) moved to a folder of this test's own."""
    folder = tmp_path / "system-temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def decompressed(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return zstandard.ZstdDecompressor().stream_reader(handle).read()


def test_jobs_2_packs_a_directory_dump_that_stock_tools_restore(backup_dir, some_data, system_temp, tmp_path):
    output = run_command("backup_advanced", "--jobs", "2")
    backup_record = BackupRecord.objects.get()
    assert f"Backup #{backup_record.pk} succeeded: " in output
    assert backup_record.format == "directory" and backup_record.storage_name.endswith(".dir.tar.zst")
    assert backup_record.row_counts["core_concept"] == 30
    # The parts were spooled in a work folder that is gone afterwards.
    assert files_under(system_temp) == []
    with tarfile.open(fileobj=io.BytesIO(decompressed(Path(backup_record.location)))) as archive:
        names = archive.getnames()
    assert names[0] == "toc.dat" and len([n for n in names if n.endswith(".dat")]) > 10  # one data file per table
    # Stock tools after plain decompression, as the README shows: zstd -d | tar -x, then pg_restore on the folder.
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with tarfile.open(fileobj=io.BytesIO(decompressed(Path(backup_record.location)))) as archive:
        archive.extractall(unpacked, filter="data")
    connector = get_connector()
    listing = subprocess.run(
        [tools.tool_path("pg_restore"), "--list", str(unpacked)], capture_output=True, text=True, check=True
    ).stdout
    assert "TABLE DATA public core_concept" in listing
    scratch = f"{connector.database_name}_stock_restore"
    with connection.cursor() as cursor:  # autocommit: the test is transactional
        cursor.execute(f'CREATE DATABASE "{scratch}"')
    try:
        args = [tools.tool_path("pg_restore"), *connector._conn_args(), "--no-owner", "-j", "2", "-d", scratch]
        subprocess.run([*args, str(unpacked)], env=connector._env(), check=True, capture_output=True)
        assert connector._counts_in(scratch)["core_concept"] == 30
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE "{scratch}" WITH (FORCE)')


def test_restore_with_jobs_and_a_table_restore_read_the_directory_artifact(backup_dir, some_data, system_temp):
    run_command("backup_advanced", "--jobs", "2")
    backup_record = BackupRecord.objects.get()
    DictionaryEntry.objects.filter(key__in=["k1", "k2"]).delete()
    Concept.objects.all().delete()

    run_command("restore_db", "--backup-id", str(backup_record.pk), "--confirm", "--tables", "core_concept")
    assert Concept.objects.count() == 30 and DictionaryEntry.objects.count() == 48

    output = run_command("restore_db", "--backup-id", str(backup_record.pk), "--confirm", "--jobs", "2")
    assert "directory" in output
    connection.close()
    assert DictionaryEntry.objects.count() == 50 and Concept.objects.count() == 30
    assert files_under(system_temp) == []  # the decoded tar and its unpacked folder went with the work folder


def test_verification_restores_the_directory_artifact_and_tells_a_damaged_one(backup_dir, some_data):
    run_command("backup_advanced", "--jobs", "2")
    backup_record = BackupRecord.objects.get()
    output = run_command("verify_backup", str(backup_record.pk), "--restore-test", "--jobs", "2")
    assert "restore test" in output and "passed" in output
    # Cut the artifact short: the checksum no longer matches, and verification says so without restoring.
    artifact = Path(backup_record.location)
    artifact.write_bytes(artifact.read_bytes()[: artifact.stat().st_size // 2])
    command_error("verify_backup", str(backup_record.pk), "--restore-test", match="(?i)checksum|damaged")
    assert Concept.objects.count() == 30


def test_straight_to_s3_with_jobs_leaves_no_local_file(faulty_s3, backup_dir, some_data, system_temp):
    output = run_command("backup_advanced", "--jobs", "2", "--upload-s3", "--no-local-copy")
    backup_record = BackupRecord.objects.get()
    assert "(no local copy)" in output and backup_record.format == "directory"
    assert files_under(backup_dir) == [] and files_under(system_temp) == []
    output = run_command("verify_backup", str(backup_record.pk), "--restore-test")
    assert "of the S3 copy passed" in output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--jobs", "0"], "--jobs: Dump jobs must be 1 to 32; got 0."),
        (["--jobs", "33"], "--jobs: Dump jobs must be 1 to 32; got 33."),
        (["--jobs", "2", "--format", "plain"], "--jobs: A parallel dump is a directory archive, not 'plain'"),
    ],
)
def test_bad_jobs_are_refused_before_any_work(backup_dir, some_data, arguments, message):
    command_error("backup_advanced", *arguments, match=message.replace("(", r"\(").replace(")", r"\)"))
    assert BackupRecord.objects.count() == 0 and files_under(backup_dir) == []


def test_a_failing_parallel_dump_keeps_nothing_and_says_why(backup_dir, some_data, system_temp, monkeypatch):
    # A real failure: another session holds an exclusive lock, so pg_dump's workers give up on it.
    monkeypatch.setattr(PostgreSQLConnector, "lock_wait_timeout", "500ms")
    holder = get_connector()._raw_connection(autocommit=False)
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLE core_concept IN ACCESS EXCLUSIVE MODE")
        command_error("backup_advanced", "--jobs", "2", match=r"(?s)pg_dump failed .*core_concept")
    finally:
        holder.rollback()
        holder.close()
    failed = BackupRecord.objects.get()
    assert failed.status == "failed" and "core_concept" in failed.error
    assert files_under(backup_dir) == [] and files_under(system_temp) == []
    assert Concept.objects.count() == 30


def test_sqlite_refuses_parallel_dumps(backup_dir, sqlite_alias):
    alias, _ = sqlite_alias
    command_error(
        "backup_advanced", "--database", alias, "--jobs", "2", match="--jobs: sqlite backups cannot be dumped"
    )
    assert BackupRecord.objects.count() == 0
