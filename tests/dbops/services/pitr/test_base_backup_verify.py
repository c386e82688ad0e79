"""verify_backup on PITR base backups from a real throwaway cluster: checksum, pg_verifybackup against
the backup_manifest, and as the restore test, WAL replay in a scratch server started on the unpacked
backup until it is consistent. Faults are real: a byte flipped inside a relation file of the backup,
a byte flipped in the stored tarball."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from dbops.models import BackupRecord
from dbops.services.pitr.recovery import pitr_base_backup_create
from dbops.services.pitr.wal_archive import pitr_storage
from tests.commands import command_error, run_command
from tests.dbops.services.pitr.cluster import (  # noqa: F401  (pitr_clusters: fixture)
    database_alias,
    pitr_clusters,
    switch_wal_and_wait,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def own_temp_folder(monkeypatch):
    """A temp folder of this test's own for the scratch servers (readable by the postgres OS user), so
    the check that none is left sees only this test's and not those of other runs on the machine."""
    folder = Path(tempfile.mkdtemp(prefix="dbops-test-tmp-"))
    folder.chmod(0o755)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def scratch_folders() -> set[str]:
    return {path.name for path in Path(tempfile.gettempdir()).glob("dbops-scratch-cluster-*")}


def base_backup_of_a_cluster_with_rows(pitr_clusters, *setup_sql: str) -> tuple[BackupRecord, object]:  # noqa: F811
    source = pitr_clusters.archiving_source()
    for statement in setup_sql:
        source.execute_outside_transaction(statement)
    source.query("CREATE TABLE item (id int PRIMARY KEY, label text NOT NULL)")
    source.query("INSERT INTO item SELECT i, 'row ' || i FROM generate_series(1, 500) i")
    source.query("CHECKPOINT")  # the rows are in the relation files pg_basebackup copies
    with database_alias("pitr_source", source.port) as alias:
        record = pitr_base_backup_create(using=alias)
    switch_wal_and_wait(source)  # the backup's last segment is archived too
    return record, source


def test_a_good_base_backup_passes_checksum_pg_verifybackup_and_wal_replay(
    pitr_clusters,  # noqa: F811
    monkeypatch,
    settings,
    own_temp_folder,
):
    # Given a base backup of a cluster archiving through archive_wal, and a verifier that starts
    # its scratch server with the same interpreter and storage settings the servers use
    record, source = base_backup_of_a_cluster_with_rows(pitr_clusters)
    pitr_clusters.lend_environment(monkeypatch, settings)
    before = scratch_folders()

    # When it is verified with the restore test, as the newest base backup
    output = run_command("verify_backup", "--latest", "--kind", "base", "--restore-test")

    # Then every check passed and is recorded on the catalog row
    assert f"Backup #{record.pk} verified: checksum + backup manifest + WAL replay to " in output
    record.refresh_from_db()
    details = record.verification_details
    assert record.verification_status == BackupRecord.VerificationStatus.PASSED, details
    assert details["checksum_ok"] and details["manifest_verified"] and details["restore_tested"]
    assert details["problems"] == []
    assert details["tables_in_database"] == 1  # `item`, read from the recovered catalog
    assert details["wal_restored_from_archive"] >= 1  # replay fetched WAL through our restore_wal
    replayed, end = (int(part, 16) for part in details["replayed_to_lsn"].split("/")), details["end_lsn"]
    assert tuple(replayed) >= tuple(int(part, 16) for part in end.split("/"))
    # And the scratch server is gone, the source untouched
    assert scratch_folders() == before
    assert source.query("SELECT count(*) FROM item")[0][0] == 500


def test_plain_verify_latest_never_picks_a_base_backup(pitr_clusters):  # noqa: F811
    base_backup_of_a_cluster_with_rows(pitr_clusters)
    command_error("verify_backup", "--latest", match=r"No successful backup \(full\) to verify")


def _repack_with_a_flipped_byte(tarball: bytes, member_name: str) -> bytes:
    """The same base.tar.gz with one byte flipped in the middle of one member."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as source,
        tarfile.open(fileobj=out, mode="w:gz") as copy,
    ):
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None
            if member.name == member_name:
                flipped = bytearray(data)
                flipped[len(flipped) // 2] ^= 0x01
                data = bytes(flipped)
            copy.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


@pytest.mark.parametrize("pitr_clusters", ["local"], indirect=True)
def test_a_byte_flipped_in_a_data_file_fails_pg_verifybackup_and_is_recorded(pitr_clusters, monkeypatch, settings):  # noqa: F811
    # Given a base backup whose relation file of `item` has one byte flipped, under a catalog
    # checksum of the damaged bytes (damage before the checksum was taken: the SHA-256 cannot see it)
    record, source = base_backup_of_a_cluster_with_rows(pitr_clusters)
    relation_file = source.query("SELECT pg_relation_filepath('item')")[0][0]
    _kind, backend = pitr_storage()
    with backend.open(record.storage_name, "rb") as stored:
        damaged = _repack_with_a_flipped_byte(stored.read(), relation_file)
    backend.delete(record.storage_name)
    backend.save(record.storage_name, ContentFile(damaged))
    BackupRecord.objects.filter(pk=record.pk).update(
        sha256=hashlib.sha256(damaged).hexdigest(), size_bytes=len(damaged)
    )
    pitr_clusters.lend_environment(monkeypatch, settings)

    # When it is verified (with the restore test asked for)
    message = command_error("verify_backup", str(record.pk), "--restore-test")

    # Then pg_verifybackup names the damaged file, in one line, and the failure is recorded
    assert f"Backup #{record.pk} FAILED verification" in message
    assert f'checksum mismatch for file "{relation_file}"' in message
    record.refresh_from_db()
    details = record.verification_details
    assert record.verification_status == BackupRecord.VerificationStatus.FAILED
    assert details["checksum_ok"] is True and details["manifest_verified"] is False
    assert details["restore_tested"] is False  # no replay of a backup known to be damaged


@pytest.mark.parametrize("pitr_clusters", ["local"], indirect=True)
def test_a_byte_flipped_in_the_stored_tarball_fails_the_checksum(pitr_clusters):  # noqa: F811
    record, _source = base_backup_of_a_cluster_with_rows(pitr_clusters)
    _kind, backend = pitr_storage()
    artifact = Path(backend.path(record.storage_name))
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))

    command_error("verify_backup", str(record.pk), match=f"Backup #{record.pk} FAILED verification")

    record.refresh_from_db()
    assert record.verification_status == BackupRecord.VerificationStatus.FAILED
    assert record.verification_details["checksum_ok"] is False
    assert record.verification_details["manifest_verified"] is False


@pytest.mark.parametrize("pitr_clusters", ["local"], indirect=True)
def test_a_backup_whose_server_cannot_start_fails_the_replay_test(pitr_clusters, monkeypatch, settings):  # noqa: F811
    # Given a base backup taken while a setting that only applies at the next start names a library
    # that does not exist (the running source is fine; a restore of this backup would never start)
    record, source = base_backup_of_a_cluster_with_rows(
        pitr_clusters, "ALTER SYSTEM SET shared_preload_libraries = 'dbops_no_such_library'"
    )
    pitr_clusters.lend_environment(monkeypatch, settings)

    # When it is verified with the restore test
    message = command_error("verify_backup", str(record.pk), "--restore-test")

    # Then the files are fine, but the replay test fails with the server's own reason
    assert "WAL replay: The scratch server did not reach a consistent state" in message
    assert "dbops_no_such_library" in message
    record.refresh_from_db()
    assert record.verification_status == BackupRecord.VerificationStatus.FAILED
    assert record.verification_details["manifest_verified"] is True
    assert record.verification_details["restore_tested"] is False
    assert source.query("SELECT count(*) FROM item")[0][0] == 500
