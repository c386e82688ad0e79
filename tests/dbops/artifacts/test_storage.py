"""The one atomic writer: complete files only, durable, and written back as they grow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbops.artifacts import storage
from dbops.artifacts.manifest import manifest_read, manifest_write
from dbops.exceptions import BackupError


def test_artifact_appears_only_complete_and_writeback_starts_every_few_mib(backup_dir, monkeypatch):
    hints = []
    monkeypatch.setattr(storage.os, "posix_fadvise", lambda fd, offset, length, advice: hints.append((offset, length)))
    chunk = os.urandom(1 << 20)
    final_path = backup_dir / "db" / "one.dump"
    with storage.local_artifact_writer("db/one.dump") as handle:
        for _ in range(20):
            handle.write(chunk)
        assert not os.path.exists(final_path)  # only the .partial exists while writing
        assert (backup_dir / "db" / "one.dump.partial").exists()
    assert Path(final_path).read_bytes() == chunk * 20
    assert not (backup_dir / "db" / "one.dump.partial").exists()
    # Every WRITEBACK_EVERY bytes the written range is handed to the kernel, in order and without gaps.
    step = storage.WRITEBACK_EVERY
    assert hints == [(0, step), (step, step)]


def test_a_failed_write_leaves_no_file(backup_dir):
    with pytest.raises(RuntimeError), storage.local_artifact_writer("db/two.dump") as handle:
        handle.write(b"half a dump")
        raise RuntimeError("pg_dump died")
    assert list((backup_dir / "db").iterdir()) == []


def test_an_existing_artifact_is_never_overwritten(backup_dir):
    with storage.local_artifact_writer("db/three.dump") as handle:
        handle.write(b"first")
    with pytest.raises(BackupError, match="Refusing to overwrite"), storage.local_artifact_writer("db/three.dump"):
        pass
    assert (backup_dir / "db" / "three.dump").read_bytes() == b"first"


def test_manifest_is_written_whole_with_private_permissions(backup_dir):
    (backup_dir / "db").mkdir()
    manifest_write(storage.local_storage(), "db/four.dump", {"sha256": "ab" * 32, "storage_name": "db/four.dump"})
    path = backup_dir / "db" / "four.dump.manifest.json"
    path.chmod(0o644)  # a replaced manifest is private again too
    manifest_write(storage.local_storage(), "db/four.dump", {"sha256": "cd" * 32, "storage_name": "db/four.dump"})
    assert manifest_read(storage.local_storage(), "db/four.dump.manifest.json")["sha256"] == "cd" * 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert not (backup_dir / "db" / "four.dump.manifest.json.partial").exists()
