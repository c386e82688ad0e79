"""`pitr restore --delta`: a base backup unpacked over an existing (stopped) data directory, as
pgBackRest's delta restore: a file whose bytes already match the backup's is kept untouched, a file
that differs is rewritten (through a temporary file and a rename), and files the backup does not have
are removed. The tarball's SHA-256 is proven in a first pass, before anything in the directory changes."""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from dbops.artifacts.pipeline import sha256_of
from dbops.exceptions import PitrError
from dbops.models import BackupRecord

CHUNK = 1 << 20


@dataclass
class DeltaResult:
    kept: int = 0  # files already identical to the backup's
    written: int = 0  # files rewritten or new
    removed: int = 0  # files the backup does not have


def data_dir_running(target_dir: Path) -> bool:
    """Whether a server runs on the directory (its postmaster.pid names a live process)."""
    try:
        pid = int((target_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def delta_refusal(target_dir: Path, *, confirm: bool) -> None:
    """A delta restore goes only into an existing data directory of a stopped server, confirmed."""
    if not (target_dir / "PG_VERSION").is_file():
        raise PitrError(f"{target_dir} is not a PostgreSQL data directory: a delta restore goes only over one.")
    if data_dir_running(target_dir):
        raise PitrError(f"A server is running on {target_dir}: stop it before a delta restore over it.")
    if not confirm:
        raise PitrError(
            f"A delta restore rewrites the data directory {target_dir} (keeping files that match): confirm it.",
            parameter="confirm",
        )


def base_backup_unpack_delta(backend, record: BackupRecord, target_dir: Path) -> DeltaResult:
    with backend.open(record.storage_name, "rb") as stored:
        digest, _size = sha256_of(stored)
    if digest != record.sha256:
        raise PitrError(f"Base backup #{record.pk} is corrupt: its SHA-256 does not match the catalog.")
    result, in_backup = DeltaResult(), set()
    with backend.open(record.storage_name, "rb") as stored, tarfile.open(fileobj=stored, mode="r|gz") as archive:
        for member in archive:
            member = tarfile.data_filter(member, str(target_dir))
            path = target_dir / member.name
            in_backup.add(path)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                kept = _file_delta(archive.extractfile(member), path, member.size)
                result.kept, result.written = result.kept + kept, result.written + (not kept)
                path.chmod(member.mode & 0o7777)
            elif member.issym():
                path.unlink(missing_ok=True)
                path.symlink_to(member.linkname)
    for path in sorted(target_dir.rglob("*"), reverse=True):  # deepest first: folders after their files
        if path not in in_backup and not path.is_dir():
            path.unlink()
            result.removed += 1
    return result


def _file_delta(source, path: Path, size: int) -> bool:
    """Compares `source` with the file at `path` chunk by chunk; keeps the file when equal (True), else
    writes it anew from the identical prefix and the rest of `source` (False)."""
    existing = path.open("rb") if path.is_file() and not path.is_symlink() and path.stat().st_size == size else None
    offset, chunk = 0, source.read(CHUNK)
    try:
        if existing is not None:
            while chunk and existing.read(len(chunk)) == chunk:
                offset += len(chunk)
                chunk = source.read(CHUNK)
            if not chunk:
                return True
        partial = path.with_name(f".{path.name}.dbops-delta")
        with partial.open("wb") as sink:
            if existing is not None:  # the identical prefix, a chunk at a time (relation files reach 1 GB)
                existing.seek(0)
                while offset:
                    offset -= sink.write(existing.read(min(CHUNK, offset)))
            while chunk:
                sink.write(chunk)
                chunk = source.read(CHUNK)
        os.replace(partial, path)
        return False
    finally:
        if existing is not None:
            existing.close()
