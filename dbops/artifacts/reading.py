"""Reading a backup back: find the artifact (local, else S3), prove its checksum, peel encryption and
compression into a plain dump file. Shared by restore and verification, and run before either touches
a database."""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import zstandard
from django.conf import settings

from dbops.artifacts.pipeline import CHUNK_SIZE, PLAIN_DUMP_END, ByteProgress, decoded_reader, sha256_of
from dbops.artifacts.storage import MANIFEST_SUFFIX, local_storage, s3_storage
from dbops.exceptions import ChecksumMismatch, EncryptionError, NotABackupError, RestoreError
from dbops.models import BackupRecord

# What the innermost layer of a decoded artifact means, per engine.
FORMAT_OF_LAYER = {"custom": "custom", "plain": "plain", "sqlite": "sqlite", "sqlite-plain": "plain"}
ENGINE_OF_LAYER = {"custom": "postgresql", "plain": "postgresql", "sqlite": "sqlite", "sqlite-plain": "sqlite"}


@dataclass
class DecodedDump:
    path: Path
    fmt: str  # custom | plain | sqlite
    engine: str  # postgresql | sqlite
    layers: list[str]
    size_bytes: int


def artifact_fetch(backup_record: BackupRecord, workdir: Path) -> Path:
    """A local path to the record's artifact with its checksum proven; downloads from S3 if needed.

    Raises ChecksumMismatch when the bytes differ from the recorded SHA-256."""
    if backup_record.status != BackupRecord.Status.SUCCEEDED:
        raise RestoreError(f"Backup #{backup_record.pk} is {backup_record.status}, not a usable backup.")
    local = local_storage()
    if backup_record.storage_name and local.exists(backup_record.storage_name):
        path = Path(local.path(backup_record.storage_name))
        with open(path, "rb") as handle:
            digest, size = sha256_of(handle)
        _check(backup_record, digest, size, where=str(path))
        return path
    remote = s3_storage()
    if backup_record.uploaded_to_s3 and remote is not None:
        target = workdir / Path(backup_record.storage_name).name
        digest, size = hashlib.sha256(), 0
        try:
            with remote.open(backup_record.storage_name, "rb") as source, open(target, "wb") as sink:
                while chunk := source.read(CHUNK_SIZE):
                    digest.update(chunk)
                    size += len(chunk)
                    sink.write(chunk)
        except Exception as exc:  # boto3 errors of many kinds
            raise RestoreError(f"Backup #{backup_record.pk}: cannot download it from S3: {exc}") from exc
        _check(backup_record, digest.hexdigest(), size, where=f"s3 {backup_record.s3_key}")
        return target
    raise RestoreError(f"Backup #{backup_record.pk}: its artifact is neither in local storage nor on S3.")


def _check(backup_record: BackupRecord, digest: str, size: int, *, where: str) -> None:
    if digest != backup_record.sha256 or (backup_record.size_bytes is not None and size != backup_record.size_bytes):
        raise ChecksumMismatch(
            f"Backup #{backup_record.pk} is damaged: {where} has SHA-256 {digest[:16]}… ({size} bytes), "
            f"the catalog recorded {backup_record.sha256[:16]}… ({backup_record.size_bytes} bytes). "
            "Nothing was restored."
        )


def file_manifest(path: Path) -> dict | None:
    """The manifest beside a backup file given by path, if there is one."""
    manifest_path = path.with_name(path.name + MANIFEST_SUFFIX)
    if not manifest_path.is_file():
        return None
    try:
        return json.loads(manifest_path.read_text())
    except ValueError:
        return None


def file_check(path: Path) -> dict | None:
    """Checks a backup file given by path: exists, and matches its manifest's checksum if it has one."""
    if not path.is_file():
        raise RestoreError(f"{path} does not exist or is not a file.")
    manifest = file_manifest(path)
    if manifest and manifest.get("sha256"):
        with open(path, "rb") as handle:
            digest, size = sha256_of(handle)
        if digest != manifest["sha256"]:
            raise ChecksumMismatch(
                f"{path} is damaged: SHA-256 {digest[:16]}… ({size} bytes) differs from its manifest "
                f"({manifest['sha256'][:16]}…). Nothing was restored."
            )
    return manifest


def artifact_decode(path: Path, workdir: Path, *, progress: ByteProgress | None = None) -> DecodedDump:
    """Decrypts/decompresses `path` into `workdir`; refuses files that are not backups or are damaged.

    `progress(read, written)` gets the artifact bytes read and the dump bytes written after each chunk."""
    target = workdir / "decoded.dump"
    size = 0
    try:
        with open(path, "rb") as source:
            reader, layers = decoded_reader(source, encryption_key=settings.BACKUP_ENCRYPTION_KEY)
            kind = layers[-1]
            if kind == "unknown":
                what = " inside " + "+".join(layers[:-1]) if len(layers) > 1 else ""
                raise NotABackupError(f"{path} is not a backup (no PostgreSQL archive, SQL or SQLite content{what}).")
            with open(target, "wb") as sink:
                while chunk := reader.read(CHUNK_SIZE):
                    sink.write(chunk)
                    size += len(chunk)
                    if progress is not None:
                        progress(source.tell(), size)
    except EncryptionError:
        raise
    except (zstandard.ZstdError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise RestoreError(f"{path} does not exist.") from exc
        raise NotABackupError(f"{path} is damaged or truncated: {exc}") from exc
    if kind == "plain" and PLAIN_DUMP_END not in _tail(target):
        raise NotABackupError(f"{path} is truncated: the SQL dump does not end with PostgreSQL's completion mark.")
    return DecodedDump(
        path=target, fmt=FORMAT_OF_LAYER[kind], engine=ENGINE_OF_LAYER[kind], layers=layers, size_bytes=size
    )


def _tail(path: Path, size: int = 512) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - size))
        return handle.read()
