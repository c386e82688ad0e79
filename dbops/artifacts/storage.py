"""Where backup artifacts live: the local `backups` storage (always) and `backups_s3` (when configured),
both through Django's storage API, and the one atomic writer every local file goes through.

A "place" is "local" or "s3". Each artifact has `<name>.manifest.json` beside it (dbops.artifacts.manifest).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.core.files.storage.filesystem import FileSystemStorage

from dbops.exceptions import ArtifactWriteError, BackupError, UploadError

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
UPLOAD_ATTEMPTS = 3
WRITEBACK_EVERY = 8 << 20
COPY_CHUNK = 1 << 20
LOCAL, S3 = "local", "s3"


def local_storage() -> FileSystemStorage:
    return storages["backups"]


def s3_storage() -> Storage | None:
    """The S3 storage, or None when no bucket is configured."""
    if "backups_s3" not in settings.STORAGES:
        return None
    return storages["backups_s3"]


def is_local(storage: Storage) -> bool:
    return isinstance(storage, FileSystemStorage)


def storage_label(storage: Storage) -> str:
    """How an operator recognises a storage in a message: its folder, or its bucket and prefix."""
    if is_local(storage):
        return f"local storage {storage.location}"
    bucket = getattr(storage, "bucket_name", "?")
    location = getattr(storage, "location", "").strip("/")
    return f"S3 bucket {bucket}" + (f" ({location}/)" if location else "")


def partial_path(path: Path) -> Path:
    return path.with_name(f"{path.name}{PARTIAL_SUFFIX}")


class _WritebackFile:
    """A raw file that asks the kernel to start writing back every WRITEBACK_EVERY bytes, and turns a
    failed write (disk full, I/O error) into one ArtifactWriteError naming the file.

    The final fsync then only waits for the tail instead of the whole artifact (the way PostgreSQL's
    pg_flush_data does it), and the backup does not fill the page cache. Linux starts writeback of
    dirty pages on POSIX_FADV_DONTNEED; elsewhere the hint does nothing and the fsync does it all."""

    def __init__(self, handle, path: Path) -> None:
        self._handle, self._path = handle, path
        self._written = self._flushed = 0

    def write(self, data) -> int:
        written = write_all(self._handle, data, self._path)
        self._written += written
        if self._written - self._flushed >= WRITEBACK_EVERY and hasattr(os, "posix_fadvise"):
            pending = self._written - self._flushed
            os.posix_fadvise(self._handle.fileno(), self._flushed, pending, os.POSIX_FADV_DONTNEED)
            self._flushed = self._written
        return written

    def flush(self) -> None:
        self._handle.flush()


def write_all(handle, data, path: Path) -> int:
    """Writes all of `data` to a raw (unbuffered) file. A raw write may be short when the disk fills up;
    looping makes the next one report ENOSPC instead of leaving a silently truncated file."""
    view = memoryview(data).cast("B")
    done = 0
    try:
        while done < len(view):
            done += handle.write(view[done:])
    except OSError as exc:
        raise ArtifactWriteError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    return done


def fsync_path(path: Path) -> None:
    """fsyncs a file, or a folder (which makes a rename in it durable: the file's own fsync does not
    cover its directory entry)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: Path | str, *, replace: bool = False, make_folders: bool = False) -> Iterator[Any]:
    """Writes `path` all or nothing: into `<name>.partial` beside it, fsynced and renamed over `path`
    only when the block succeeds, the rename made durable (directory fsync). On any failure, disk
    full included, the partial file is removed and `path` is as it was.

    Without `replace` an existing `path` is refused, and so is a partial file left by a run still
    going (or killed: the backups remove those under their database's lock). Files are 0600."""
    path = Path(path)
    partial = partial_path(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    if not replace and path.exists():
        raise BackupError(f"Refusing to overwrite existing backup {path}.")
    try:
        if make_folders:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(partial, flags, 0o600)
    except OSError as exc:
        if isinstance(exc, FileExistsError) and partial.exists():
            reason = f"{partial.name} exists (another run, or a killed one)"
        else:
            reason = f"folder {path.parent} is not writable ({exc.strerror or exc})"
        raise ArtifactWriteError(f"Cannot write {path}: {reason}.") from exc
    try:
        with os.fdopen(fd, "wb", buffering=0) as handle:
            if replace:
                os.fchmod(fd, 0o600)  # O_CREAT's mode only applies to a new file
            yield _WritebackFile(handle, path)
            _durably(lambda: os.fsync(handle.fileno()), path)
        _durably(lambda: os.replace(partial, path), path)
        _durably(lambda: fsync_path(path.parent), path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _durably(step: Callable[[], None], path: Path) -> None:
    try:
        step()
    except OSError as exc:
        raise ArtifactWriteError(f"Cannot write {path}: {exc.strerror or exc}.") from exc


def local_path(storage_name: str) -> Path:
    return Path(local_storage().path(storage_name))


def local_artifact_writer(storage_name: str):
    """The atomic writer of a new artifact in the local storage (its folders created 0700)."""
    return atomic_writer(local_path(storage_name), make_folders=True)


def storage_file_names(storage: Storage, folder: str = "") -> Iterator[str]:
    """Every file name in a storage, recursing into folders (a missing folder is empty).

    Other errors (S3 unreachable, permission denied) propagate: the caller must tell "empty" from
    "could not look"."""
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{folder}/{name}" if folder else name
    for sub in folders:
        yield from storage_file_names(storage, f"{folder}/{sub}" if folder else sub)


class _CountingReader:
    """A file read through, reporting (bytes read, size) to `progress` as the upload takes it (boto3's
    transfer threads read parts concurrently: one lock keeps the count whole)."""

    def __init__(self, handle, size: int, progress: Callable[[int, int], None]) -> None:
        self._handle, self._size, self._progress, self._read = handle, size, progress, 0
        self._lock = threading.Lock()

    def read(self, amount: int = -1) -> bytes:
        data = self._handle.read(amount)
        with self._lock:
            self._read = min(self._read + len(data), self._size)
            self._progress(self._read, self._size)
        return data

    def __getattr__(self, name: str):
        return getattr(self._handle, name)


def storage_put(
    storage: Storage, name: str, source: Path, *, progress: Callable[[int, int], None] | None = None
) -> str:
    """Stores the file `source` as `name`, replacing what is there: atomically and durably in the local
    storage, as one upload (multipart for big files) on S3. Returns the stored name. `progress` hears
    (bytes sent, size) during an S3 upload."""
    if is_local(storage):
        target = Path(storage.path(name))
        with atomic_writer(target, replace=True, make_folders=True) as sink, open(source, "rb") as src:
            shutil.copyfileobj(src, sink, COPY_CHUNK)
        return name
    if storage.exists(name):
        storage.delete(name)  # file_overwrite is off: saving over a name would pick another one
    with open(source, "rb") as handle:
        readable = _CountingReader(handle, Path(source).stat().st_size, progress) if progress else handle
        saved = storage.save(name, File(readable, name=Path(name).name))
    if saved != name:
        raise UploadError(f"{storage_label(storage)} stored {name} as {saved}.")
    return saved


def storage_save_exact(storage: Storage, name: str, content: File) -> None:
    """Stores `content` under exactly `name`, never half: atomically (and durably) in the local storage,
    as one upload on S3. Storages rename on a collision, which would break a fixed layout: a name
    taken meanwhile on S3 is refused (UploadError), the copy under another name removed."""
    if is_local(storage):
        with atomic_writer(Path(storage.path(name)), replace=True, make_folders=True) as sink:
            for chunk in content.chunks(COPY_CHUNK):
                sink.write(chunk)
        return
    saved = storage.save(name, content)
    if saved != name:
        storage.delete(saved)
        raise UploadError(f"{storage_label(storage)} stored {name} as {saved} (a concurrent writer?); removed it.")


def s3_key(storage: Storage, name: str) -> str:
    location = getattr(storage, "location", "")
    return f"{location.strip('/')}/{name}" if location else name


def s3_url(storage: Storage, *, key: str = "", name: str = "") -> str:
    """`s3://<bucket>/<key>` of an object (given its key, or its storage name), as an operator finds it."""
    return f"s3://{getattr(storage, 'bucket_name', '?')}/{key or s3_key(storage, name)}"


def s3_upload(
    local_file: Path | str,
    storage_name: str,
    *,
    after_upload: Callable[[str], None],
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Copies the artifact to S3 with retries, then calls `after_upload(key)` (which writes the manifest
    there, so a manifest on S3 always has its artifact). Returns the key.

    Raises UploadError with the last error after UPLOAD_ATTEMPTS tries."""
    storage = s3_storage()
    if storage is None:
        raise UploadError("S3 is not configured: set S3_BACKUP_BUCKET (and S3_ENDPOINT_URL for MinIO/moto).")
    last_error: Exception | None = None
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        try:
            key = s3_key(storage, storage_put(storage, storage_name, Path(local_file), progress=progress))
            after_upload(key)
            return key
        except Exception as exc:  # boto3/botocore raise many unrelated types; all mean "not uploaded"
            last_error = exc
            logger.warning("S3 upload attempt %d/%d of %s failed: %s", attempt, UPLOAD_ATTEMPTS, storage_name, exc)
            if attempt < UPLOAD_ATTEMPTS:
                time.sleep(0.5 * 2 ** (attempt - 1))
    raise UploadError(f"Upload to S3 failed after {UPLOAD_ATTEMPTS} attempts: {last_error}")


def delete_everywhere(names: list[str]) -> list[str]:
    """Removes the given names (an artifact and its manifest) from local storage and S3; returns what
    was removed, as `place:name`."""
    removed = []
    targets = [(LOCAL, local_storage())]
    if s3_storage() is not None:
        targets.append((S3, s3_storage()))
    for place, storage in targets:
        for name in names:
            if storage.exists(name):
                storage.delete(name)
                removed.append(f"{place}:{name}")
    return removed
