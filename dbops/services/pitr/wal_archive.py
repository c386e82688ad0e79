"""The WAL archive: PostgreSQL's archive_command and restore_command land here (`archive_wal`,
`restore_wal`).

Each file is stored zstd-compressed through Django's storage API (`backups` locally, `backups_s3` on
S3) under `pitr/<system identifier>/wal/<name>.zst`, with a JSON manifest beside it holding the
SHA-256 of the original bytes. The manifest is written last, so it marks a complete copy. Archiving
the same bytes twice succeeds without rewriting (PostgreSQL retries after a crash); different bytes
under an archived name fail loudly and leave the archive as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import zstandard
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

from dbops.artifacts.storage import storage_save_exact
from dbops.exceptions import ConfigurationError, PitrError, WalArchiveConflict, WalChecksumMismatch, WalNotFound

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
STORAGE_ALIASES = {"local": "backups", "s3": "backups_s3"}
# Segments (TTTTTTTTXXXXXXXXYYYYYYYY), their .partial and .backup companions, and timeline history files.
WAL_NAME = re.compile(r"^[0-9A-F]{8}(?:[0-9A-F]{16}(?:\.partial|\.[0-9A-F]{8}\.backup)?|\.history)$")


@dataclass
class WalArchiveResult:
    name: str
    storage_name: str
    sha256: str
    size_bytes: int
    stored_bytes: int
    already_archived: bool


def pitr_storage(kind: str | None = None) -> tuple[str, Storage]:
    """The storage PITR files go to: `kind` ("local" or "s3"), else the PITR_STORAGE setting."""
    kind = kind or settings.PITR_STORAGE
    if kind not in STORAGE_ALIASES:
        raise ConfigurationError(f"PITR storage must be one of {', '.join(STORAGE_ALIASES)}; got {kind!r}.")
    alias = STORAGE_ALIASES[kind]
    if alias not in settings.STORAGES:
        raise ConfigurationError("PITR storage s3 needs S3_BACKUP_BUCKET (and its credentials) to be set.")
    return kind, storages[alias]


def cluster_id_from_data_dir(data_dir: Path | str = ".") -> str:
    """The cluster's system identifier: the first 8 bytes of global/pg_control (archive_command runs in
    the data directory). A restored cluster keeps it, so its restore_command finds the same archive."""
    control = Path(data_dir) / "global" / "pg_control"
    try:
        with control.open("rb") as handle:
            raw = handle.read(8)
    except OSError as exc:
        raise PitrError(
            f"Cannot read {control} ({exc.strerror}): run from the data directory or give the cluster id.",
            parameter="cluster_id",
        ) from exc
    if len(raw) != 8:
        raise PitrError(f"{control} is too short to be a pg_control file.")
    return str(struct.unpack("<Q", raw)[0])


def wal_prefix(cluster_id: str) -> str:
    if not cluster_id.isdigit():
        raise PitrError(f"A cluster id is the server's numeric system identifier; got {cluster_id!r}.")
    return f"pitr/{cluster_id}/wal"


def _check_name(name: str) -> None:
    if not WAL_NAME.match(name):
        raise PitrError(f"{name!r} is not a WAL file name (e.g. 000000010000000000000003 or 00000002.history).")


def wal_archive(
    *, path: Path | str, name: str, cluster_id: str, storage: str | None = None, level: int = 3
) -> WalArchiveResult:
    """Stores one WAL file (archive_command's %p and %f), zstd at `level`; idempotent for identical bytes."""
    _check_name(name)
    source = Path(path)
    if not source.is_file():
        raise PitrError(f"WAL file {source} does not exist or is not a file.")
    _kind, backend = pitr_storage(storage)
    prefix = wal_prefix(cluster_id)
    data_name, manifest_name = f"{prefix}/{name}.zst", f"{prefix}/{name}.json"

    with tempfile.TemporaryFile() as compressed:
        digest, size = hashlib.sha256(), 0
        with (
            source.open("rb") as raw,
            zstandard.ZstdCompressor(level=level).stream_writer(compressed, closefd=False) as writer,
        ):
            while chunk := raw.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                writer.write(chunk)
        sha256, stored_bytes = digest.hexdigest(), compressed.tell()

        archived = _read_manifest(backend, manifest_name) if backend.exists(manifest_name) else None
        if archived is not None:
            if archived["sha256"] == sha256:
                return WalArchiveResult(name, data_name, sha256, size, archived["stored_bytes"], True)
            raise WalArchiveConflict(
                f"WAL file {name} is already archived for cluster {cluster_id} with different content "
                f"(archived sha256 {archived['sha256'][:12]}…, this one {sha256[:12]}…); refusing to overwrite."
            )
        for stale in (data_name, manifest_name):  # an interrupted run's copy (or an older dbops's half manifest)
            if backend.exists(stale):
                backend.delete(stale)
        compressed.seek(0)
        storage_save_exact(backend, data_name, File(compressed, name=name))
    manifest = {
        "name": name,
        "cluster_id": cluster_id,
        "sha256": sha256,
        "size_bytes": size,
        "stored_bytes": stored_bytes,
        "compression": "zstd",
        "archived_at": datetime.now(UTC).isoformat(),
    }
    storage_save_exact(backend, manifest_name, _json_file(manifest, name=f"{name}.json"))
    return WalArchiveResult(name, data_name, sha256, size, stored_bytes, False)


def wal_restore(*, name: str, destination: Path | str, cluster_id: str, storage: str | None = None) -> int:
    """Writes one archived WAL file to `destination` (restore_command's %f and %p), checksum verified.
    Raises WalNotFound when it is not archived (PostgreSQL asks for files past the end on purpose)."""
    _check_name(name)
    _kind, backend = pitr_storage(storage)
    prefix = wal_prefix(cluster_id)
    manifest_name = f"{prefix}/{name}.json"
    manifest = _read_manifest(backend, manifest_name) if backend.exists(manifest_name) else None
    if manifest is None:
        raise WalNotFound(f"WAL file {name} is not in the archive of cluster {cluster_id}.")
    target = Path(destination)
    partial = target.with_name(f".{target.name}.dbops-partial")
    digest, size = hashlib.sha256(), 0
    try:
        with backend.open(f"{prefix}/{name}.zst", "rb") as stored, partial.open("wb") as out:
            reader = zstandard.ZstdDecompressor().stream_reader(stored)
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if digest.hexdigest() != manifest["sha256"] or size != manifest["size_bytes"]:
            raise WalChecksumMismatch(
                f"Archived WAL file {name} of cluster {cluster_id} is corrupt: its SHA-256 does not match "
                "the one recorded when it was archived."
            )
        os.replace(partial, target)  # PostgreSQL must never see a half-written segment
    except zstandard.ZstdError as exc:
        raise WalChecksumMismatch(f"Archived WAL file {name} of cluster {cluster_id} is corrupt: {exc}.") from exc
    finally:
        partial.unlink(missing_ok=True)
    return size


def wal_archived_names(*, cluster_id: str, storage: str | None = None) -> list[str]:
    """Names of the completely archived WAL files of one cluster (those with a manifest), sorted."""
    _kind, backend = pitr_storage(storage)
    prefix = wal_prefix(cluster_id)
    try:
        _dirs, files = backend.listdir(prefix)
    except FileNotFoundError:
        return []
    return sorted(f.removesuffix(".json") for f in files if f.endswith(".json"))


def wal_last_archived_at(*, cluster_id: str, storage: str | None = None) -> datetime | None:
    """When the newest archived WAL segment of a cluster was archived (None when nothing is)."""
    segments = [name for name in wal_archived_names(cluster_id=cluster_id, storage=storage) if len(name) >= 24]
    if not segments:
        return None
    newest = max(segments, key=lambda name: (name[8:24], name[:8]))
    return wal_archived_at(cluster_id=cluster_id, name=newest, storage=storage)


def wal_is_archived(*, cluster_id: str, name: str, storage: str | None = None) -> bool:
    """Whether one WAL file is completely archived (its manifest, written last, is there)."""
    _check_name(name)
    _kind, backend = pitr_storage(storage)
    return backend.exists(f"{wal_prefix(cluster_id)}/{name}.json")


def wal_archived_at(*, cluster_id: str, name: str, storage: str | None = None) -> datetime:
    """When one archived WAL file was archived (from its manifest)."""
    _check_name(name)
    _kind, backend = pitr_storage(storage)
    manifest = _read_manifest(backend, f"{wal_prefix(cluster_id)}/{name}.json")
    if manifest is None:
        raise WalNotFound(f"WAL file {name} of cluster {cluster_id} has no whole manifest.")
    return datetime.fromisoformat(manifest["archived_at"])


def wal_history_read(*, cluster_id: str, name: str, storage: str | None = None) -> str:
    """The text of an archived timeline history file (a few lines), checksum verified."""
    if not name.endswith(".history"):
        raise PitrError(f"{name!r} is not a timeline history file.")
    with tempfile.TemporaryDirectory(prefix="dbops-history-") as folder:
        wal_restore(name=name, destination=Path(folder) / name, cluster_id=cluster_id, storage=storage)
        return (Path(folder) / name).read_text(errors="replace")


def archived_cluster_ids(*, storage: str | None = None) -> list[str]:
    _kind, backend = pitr_storage(storage)
    try:
        dirs, _files = backend.listdir("pitr")
    except FileNotFoundError:
        return []
    return sorted(d for d in dirs if d.isdigit())


def _read_manifest(backend: Storage, manifest_name: str) -> dict | None:
    """The manifest, or None when it is not whole JSON (written half by a dbops before atomic writes)."""
    with backend.open(manifest_name, "rb") as handle:
        raw = handle.read()
    try:
        manifest = json.loads(raw)
    except ValueError:
        logger.warning("WAL manifest %s is not whole JSON; the segment counts as not archived", manifest_name)
        return None
    return manifest if isinstance(manifest, dict) and "sha256" in manifest else None


def _json_file(payload: dict, *, name: str) -> File:
    return ContentFile(json.dumps(payload, indent=2).encode(), name=name)
