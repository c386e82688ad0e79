"""Where backup artifacts live: the local `backups` storage (always) and `backups_s3` (when configured),
both through Django's storage API. Each artifact has `<name>.manifest.json` beside it."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.core.files.storage.filesystem import FileSystemStorage

from dbops.exceptions import BackupError, UploadError

logger = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".manifest.json"
PARTIAL_SUFFIX = ".partial"
MANIFEST_VERSION = 1
UPLOAD_ATTEMPTS = 3
WRITEBACK_EVERY = 8 << 20


class _WritebackFile:
    """A raw file that asks the kernel to start writing back every WRITEBACK_EVERY bytes.

    The final fsync then only waits for the tail instead of the whole artifact (the way PostgreSQL's
    pg_flush_data does it), and the backup does not fill the page cache. Linux starts writeback of
    dirty pages on POSIX_FADV_DONTNEED; elsewhere the hint does nothing and the fsync does it all."""

    def __init__(self, handle) -> None:
        self._handle = handle
        self._written = self._flushed = 0

    def write(self, data) -> int:
        written = self._handle.write(data)
        self._written += written
        if self._written - self._flushed >= WRITEBACK_EVERY and hasattr(os, "posix_fadvise"):
            pending = self._written - self._flushed
            os.posix_fadvise(self._handle.fileno(), self._flushed, pending, os.POSIX_FADV_DONTNEED)
            self._flushed = self._written
        return written

    def flush(self) -> None:
        self._handle.flush()


def _fsync_directory(path: Path) -> None:
    """Makes a rename in `path` durable (the file's own fsync does not cover its directory entry)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def local_storage() -> FileSystemStorage:
    return storages["backups"]


def s3_storage() -> Storage | None:
    """The S3 storage, or None when no bucket is configured."""
    if "backups_s3" not in settings.STORAGES:
        return None
    return storages["backups_s3"]


def manifest_name(storage_name: str) -> str:
    return storage_name + MANIFEST_SUFFIX


@contextmanager
def atomic_local_writer(storage_name: str) -> Iterator[tuple[Any, str]]:
    """Opens `<name>.partial` in the local storage; renames it to `<name>` only if the block succeeds.

    A killed or failed run leaves at most a `.partial` file, which is never listed as a backup.
    Yields (file object, final filesystem path)."""
    storage = local_storage()
    final_path = Path(storage.path(storage_name))
    partial_path = final_path.with_name(final_path.name + PARTIAL_SUFFIX)
    try:
        final_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if final_path.exists():
            raise BackupError(f"Refusing to overwrite existing backup {storage_name}.")
        fd = os.open(partial_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise BackupError(f"Backup folder {final_path.parent} is not writable: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb", buffering=0) as handle:
            yield _WritebackFile(handle), str(final_path)
            os.fsync(handle.fileno())
        os.replace(partial_path, final_path)
        _fsync_directory(final_path.parent)
    except BaseException:
        partial_path.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_file_writer(path: Path) -> Iterator[Any]:
    """Like atomic_local_writer for a file the user named (backup_db --output)."""
    partial_path = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    try:
        fd = os.open(partial_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise BackupError(f"Cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb", buffering=0) as handle:
            yield _WritebackFile(handle)
            os.fsync(handle.fileno())
        os.replace(partial_path, path)
        _fsync_directory(path.parent)
    except BaseException:
        partial_path.unlink(missing_ok=True)
        raise


def write_local_manifest(storage_name: str, manifest: dict[str, Any]) -> None:
    """Writes (or replaces) the manifest beside the local artifact, atomically."""
    path = Path(local_storage().path(manifest_name(storage_name)))
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        handle.flush()
        os.fsync(handle.fileno())  # the manifest is what rebuilds the catalog after a restore
    os.chmod(partial, 0o600)  # O_CREAT's mode only applies to a new file
    os.replace(partial, path)
    _fsync_directory(path.parent)


def read_manifest(storage: Storage, name: str) -> dict[str, Any] | None:
    try:
        with storage.open(name, "rb") as handle:
            manifest = json.loads(handle.read())
    except (OSError, ValueError) as exc:
        logger.warning("unreadable backup manifest %s: %s", name, exc)
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("storage_name") else None


def iter_manifest_names(storage: Storage, folder: str = "") -> Iterator[str]:
    """Every manifest name in a storage (recursing into folders)."""
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        if name.endswith(MANIFEST_SUFFIX):
            yield f"{folder}/{name}" if folder else name
    for sub in folders:
        yield from iter_manifest_names(storage, f"{folder}/{sub}" if folder else sub)


def s3_upload(local_path: str, storage_name: str, manifest: dict[str, Any]) -> str:
    """Copies the artifact then its manifest to S3 (multipart via boto3), with retries; returns the key.

    Raises UploadError with the last error after UPLOAD_ATTEMPTS tries."""
    storage = s3_storage()
    if storage is None:
        raise UploadError("S3 is not configured: set S3_BACKUP_BUCKET (and S3_ENDPOINT_URL for MinIO/moto).")
    last_error: Exception | None = None
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        try:
            if storage.exists(storage_name):
                storage.delete(storage_name)  # a previous attempt may have left a complete object
            with open(local_path, "rb") as handle:
                saved = storage.save(storage_name, File(handle, name=storage_name))
            manifest = {**manifest, "uploaded_to_s3": True, "s3_key": _s3_key(storage, saved)}
            if storage.exists(manifest_name(storage_name)):
                storage.delete(manifest_name(storage_name))
            storage.save(manifest_name(storage_name), ContentFile(json.dumps(manifest, indent=2, default=str)))
            return _s3_key(storage, saved)
        except Exception as exc:  # boto3/botocore raise many unrelated types; all mean "not uploaded"
            last_error = exc
            logger.warning("S3 upload attempt %d/%d of %s failed: %s", attempt, UPLOAD_ATTEMPTS, storage_name, exc)
            if attempt < UPLOAD_ATTEMPTS:
                time.sleep(0.5 * 2 ** (attempt - 1))
    raise UploadError(f"Upload to S3 failed after {UPLOAD_ATTEMPTS} attempts: {last_error}")


def _s3_key(storage: Storage, name: str) -> str:
    location = getattr(storage, "location", "")
    return f"{location.strip('/')}/{name}" if location else name


def delete_everywhere(storage_name: str) -> list[str]:
    """Removes the artifact and its manifest from local storage and S3; returns what was removed."""
    removed = []
    targets = [("local", local_storage())]
    if s3_storage() is not None:
        targets.append(("s3", s3_storage()))
    for label, storage in targets:
        for name in (storage_name, manifest_name(storage_name)):
            if storage.exists(name):
                storage.delete(name)
                removed.append(f"{label}:{name}")
    return removed
