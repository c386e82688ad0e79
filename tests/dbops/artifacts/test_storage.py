"""The local artifact writers: complete files only, durable, and written back as they grow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbops.artifacts import storage
from dbops.exceptions import BackupError


def test_artifact_appears_only_complete_and_writeback_starts_every_few_mib(backup_dir, monkeypatch):
    hints = []
    monkeypatch.setattr(storage.os, "posix_fadvise", lambda fd, offset, length, advice: hints.append((offset, length)))
    chunk = os.urandom(1 << 20)
    with storage.atomic_local_writer("db/one.dump") as (handle, final_path):
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
    with pytest.raises(RuntimeError), storage.atomic_local_writer("db/two.dump") as (handle, _):
        handle.write(b"half a dump")
        raise RuntimeError("pg_dump died")
    assert list((backup_dir / "db").iterdir()) == []


def test_an_existing_artifact_is_never_overwritten(backup_dir):
    with storage.atomic_local_writer("db/three.dump") as (handle, _):
        handle.write(b"first")
    with pytest.raises(BackupError, match="Refusing to overwrite"), storage.atomic_local_writer("db/three.dump"):
        pass
    assert (backup_dir / "db" / "three.dump").read_bytes() == b"first"


def test_manifest_is_written_whole_with_private_permissions(backup_dir):
    (backup_dir / "db").mkdir()
    storage.write_local_manifest("db/four.dump", {"sha256": "ab" * 32})
    path = backup_dir / "db" / "four.dump.manifest.json"
    assert '"sha256"' in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert not (backup_dir / "db" / "four.dump.manifest.json.partial").exists()
