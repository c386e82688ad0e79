"""The WAL archive on the real local storage and the real (moto) S3 server: compressed, checksummed,
idempotent for identical bytes, loud and harmless for different bytes."""

from __future__ import annotations

import json
import os
import struct

import pytest
from django.core.files.base import ContentFile

from dbops.exceptions import ArtifactWriteError, ConfigurationError, WalChecksumMismatch, WalNotFound
from dbops.services.pitr import wal_archive as wal_archive_module
from dbops.services.pitr.wal_archive import (
    cluster_id_from_data_dir,
    pitr_storage,
    wal_archive,
    wal_archived_names,
    wal_restore,
)
from tests.commands import command_error, run_command
from tests.dbops.services.backups.conftest import fill_disk, mounts  # noqa: F401  (mounts: fixture)

CLUSTER = "7312345678901234567"
SEGMENT = "000000010000000000000003"


def wal_bytes(seed: int, size: int = 1024 * 1024) -> bytes:
    """WAL-like content: mostly zero pages with some random records, so it compresses like real WAL."""
    block = os.urandom(2048) if seed else b"\x01" * 2048
    return (block + b"\x00" * 6144) * (size // 8192)


@pytest.fixture(params=["local", "s3"])
def storage_kind(request, backup_dir, settings):
    if request.param == "s3":
        request.getfixturevalue("s3_bucket")
    settings.PITR_STORAGE = request.param
    return request.param


def test_archive_stores_compressed_with_checksum_and_restores_identical_bytes(storage_kind, tmp_path):
    source = tmp_path / SEGMENT
    source.write_bytes(wal_bytes(1))

    result = wal_archive(path=source, name=SEGMENT, cluster_id=CLUSTER)

    assert not result.already_archived
    assert result.size_bytes == 1024 * 1024 and result.stored_bytes < result.size_bytes / 2
    _kind, backend = pitr_storage()
    assert backend.exists(f"pitr/{CLUSTER}/wal/{SEGMENT}.zst")
    with backend.open(f"pitr/{CLUSTER}/wal/{SEGMENT}.json", "rb") as handle:
        manifest = json.loads(handle.read())
    assert manifest["sha256"] == result.sha256 and manifest["compression"] == "zstd"
    assert wal_archived_names(cluster_id=CLUSTER) == [SEGMENT]

    restored = tmp_path / "pg_wal" / "RECOVERYXLOG"
    restored.parent.mkdir()
    assert wal_restore(name=SEGMENT, destination=restored, cluster_id=CLUSTER) == 1024 * 1024
    assert restored.read_bytes() == source.read_bytes()
    assert list(restored.parent.iterdir()) == [restored]  # no partial file left behind


def test_archiving_identical_bytes_again_succeeds_without_rewriting(storage_kind, tmp_path):
    source = tmp_path / SEGMENT
    source.write_bytes(wal_bytes(1))
    first = wal_archive(path=source, name=SEGMENT, cluster_id=CLUSTER)

    again = wal_archive(path=source, name=SEGMENT, cluster_id=CLUSTER)

    assert again.already_archived and again.sha256 == first.sha256


def test_different_bytes_under_an_archived_name_fail_loudly_and_change_nothing(storage_kind, tmp_path):
    original = tmp_path / "original"
    original.write_bytes(wal_bytes(1))
    wal_archive(path=original, name=SEGMENT, cluster_id=CLUSTER)
    other = tmp_path / "other"
    other.write_bytes(wal_bytes(2))

    command_error(
        "archive_wal", str(other), SEGMENT, "--cluster-id", CLUSTER, match="already archived .* different content"
    )

    restored = tmp_path / "restored"
    wal_restore(name=SEGMENT, destination=restored, cluster_id=CLUSTER)
    assert restored.read_bytes() == original.read_bytes()


def test_corrupt_archived_file_is_refused_and_nothing_is_written(backup_dir, tmp_path, settings):
    settings.PITR_STORAGE = "local"
    source = tmp_path / SEGMENT
    source.write_bytes(wal_bytes(1))
    wal_archive(path=source, name=SEGMENT, cluster_id=CLUSTER)
    manifest_path = backup_dir / "pitr" / CLUSTER / "wal" / f"{SEGMENT}.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))

    destination = tmp_path / "out"
    with pytest.raises(WalChecksumMismatch, match="corrupt"):
        wal_restore(name=SEGMENT, destination=destination, cluster_id=CLUSTER)
    assert list(tmp_path.glob("*out*")) == []


def test_missing_file_is_wal_not_found_and_the_command_exits_non_zero(storage_kind, tmp_path):
    with pytest.raises(WalNotFound):
        wal_restore(name="00000002.history", destination=tmp_path / "x", cluster_id=CLUSTER)
    command_error(
        "restore_wal", "00000002.history", str(tmp_path / "x"), "--cluster-id", CLUSTER, match="not in the archive"
    )
    assert not (tmp_path / "x").exists()


def test_history_backup_and_partial_files_are_archivable(backup_dir, tmp_path, settings):
    settings.PITR_STORAGE = "local"
    names = ["00000002.history", f"{SEGMENT}.00000028.backup", f"{SEGMENT}.partial"]
    for name in names:
        (tmp_path / name).write_bytes(b"some content")
        wal_archive(path=tmp_path / name, name=name, cluster_id=CLUSTER)
    assert wal_archived_names(cluster_id=CLUSTER) == sorted(names)


def test_cluster_id_is_read_from_pg_control_in_the_data_directory(tmp_path, backup_dir, settings, monkeypatch):
    settings.PITR_STORAGE = "local"
    (tmp_path / "global").mkdir()
    (tmp_path / "global" / "pg_control").write_bytes(struct.pack("<Q", int(CLUSTER)) + b"\x00" * 100)
    (tmp_path / "pg_wal").mkdir()
    (tmp_path / "pg_wal" / SEGMENT).write_bytes(wal_bytes(1))
    assert cluster_id_from_data_dir(tmp_path) == CLUSTER

    monkeypatch.chdir(tmp_path)  # archive_command runs in the data directory
    assert "archived" in run_command("archive_wal", f"pg_wal/{SEGMENT}", SEGMENT)
    assert (backup_dir / "pitr" / CLUSTER / "wal" / f"{SEGMENT}.zst").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing-file", SEGMENT, "--cluster-id", CLUSTER), "does not exist"),
        (("{file}", "../../etc/passwd", "--cluster-id", CLUSTER), "is not a WAL file name"),
        (("{file}", "00000001000000000000000g", "--cluster-id", CLUSTER), "is not a WAL file name"),
        (("{file}", SEGMENT, "--cluster-id", "../x"), "numeric system identifier"),
        (("{file}", SEGMENT), "^--cluster-id: Cannot read .*: run from the data directory or give the cluster id"),
    ],
)
def test_archive_wal_bad_input_stores_nothing(backup_dir, tmp_path, settings, monkeypatch, args, message):
    settings.PITR_STORAGE = "local"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "segment").write_bytes(b"x")
    args = [arg.replace("{file}", str(tmp_path / "segment")) for arg in args]
    command_error("archive_wal", *args, match=message)
    assert list(backup_dir.rglob("*")) == []


def test_s3_storage_without_a_bucket_is_a_configuration_error(settings, tmp_path):
    storages = dict(settings.STORAGES)
    storages.pop("backups_s3", None)
    settings.STORAGES = storages
    (tmp_path / SEGMENT).write_bytes(b"x")
    with pytest.raises(ConfigurationError, match="S3_BACKUP_BUCKET"):
        wal_archive(path=tmp_path / SEGMENT, name=SEGMENT, cluster_id=CLUSTER, storage="s3")


def test_a_disk_that_fills_up_before_the_manifest_leaves_no_half_manifest_and_archiving_recovers(
    backup_dir,
    mounts,  # noqa: F811
    monkeypatch,
    settings,
    tmp_path,
):
    settings.PITR_STORAGE = "local"
    mounts.tmpfs(backup_dir, "256k")
    source = tmp_path / SEGMENT
    source.write_bytes(wal_bytes(1, size=256 * 1024))  # compresses to a few KiB
    wal_folder = backup_dir / "pitr" / CLUSTER / "wal"
    real_json_file, filled = wal_archive_module._json_file, []

    def on_a_full_disk(payload, *, name):  # the segment is stored; the disk fills before its manifest
        filled.append(name)
        fill_disk(wal_folder)
        return real_json_file(payload, name=name)

    monkeypatch.setattr(wal_archive_module, "_json_file", on_a_full_disk)
    # When the manifest cannot be written, archiving fails in one line (PostgreSQL keeps the segment)...
    with pytest.raises(ArtifactWriteError, match="No space left on device"):
        wal_archive(path=source, name=SEGMENT, cluster_id=CLUSTER)
    assert filled == [f"{SEGMENT}.json"]
    # ...and nothing under the manifest's name, whole or half, claims the segment archived
    assert sorted(path.name for path in wal_folder.iterdir()) == [f"{SEGMENT}.zst", "filler"]
    assert wal_archived_names(cluster_id=CLUSTER) == []
    # Once there is room again, PostgreSQL's retry archives it and it restores byte for byte
    monkeypatch.setattr(wal_archive_module, "_json_file", real_json_file)
    (wal_folder / "filler").unlink()
    assert not wal_archive(path=source, name=SEGMENT, cluster_id=CLUSTER).already_archived
    restored = tmp_path / "RECOVERYXLOG"
    wal_restore(name=SEGMENT, destination=restored, cluster_id=CLUSTER)
    assert restored.read_bytes() == source.read_bytes()


def test_a_half_written_manifest_counts_as_not_archived_and_is_replaced(storage_kind, tmp_path):
    source = tmp_path / SEGMENT
    source.write_bytes(wal_bytes(1))
    _kind, backend = pitr_storage()
    manifest_name = f"pitr/{CLUSTER}/wal/{SEGMENT}.json"
    backend.save(manifest_name, ContentFile(b'{"name": "0000000100'))  # what a full disk left before atomic writes
    with pytest.raises(WalNotFound):
        wal_restore(name=SEGMENT, destination=tmp_path / "RECOVERYXLOG", cluster_id=CLUSTER)

    assert not wal_archive(path=source, name=SEGMENT, cluster_id=CLUSTER).already_archived

    wal_restore(name=SEGMENT, destination=tmp_path / "RECOVERYXLOG", cluster_id=CLUSTER)
    assert (tmp_path / "RECOVERYXLOG").read_bytes() == source.read_bytes()
