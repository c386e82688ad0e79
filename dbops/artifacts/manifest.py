"""The one manifest format: `<artifact>.manifest.json` beside every artifact, locally and on S3.

A manifest is the catalog row of its backup (MANIFEST_FIELDS, the one field list) plus, for a PITR
base backup, its `pitr` facts block, so the catalog can be rebuilt from storage alone (catalog_sync).
It names the encryption key by id, never the key. Locally it is written through the atomic writer
(whole, fsynced, 0600); on S3 as one PUT, which is atomic per object. Where a place holds no
artifact it gets no manifest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.core.files.storage.filesystem import FileSystemStorage
from django.utils.dateparse import parse_datetime

from dbops.artifacts.storage import (
    atomic_writer,
    is_local,
    local_storage,
    s3_storage,
    storage_file_names,
    storage_label,
)
from dbops.exceptions import UploadError
from dbops.models import BackupRecord, PitrBaseBackup

logger = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_VERSION = 1
MANIFEST_FIELDS = (
    "kind",
    "status",
    "started_at",
    "finished_at",
    "hostname",
    "pid",
    "engine",
    "database_alias",
    "database_name",
    "format",
    "compression",
    "encrypted",
    "encryption_key_id",
    "tag",
    "size_bytes",
    "sha256",
    "storage_name",
    "uploaded_to_s3",
    "s3_key",
    "upload_error",
    "triggered_by",
    "triggered_by_user",
    "server_version",
    "tool_version",
    "migration_state",
    "row_counts",
    "duration_seconds",
    "verification_status",
    "verified_at",
    "verification_details",
)
_DATETIME_FIELDS = {"started_at", "finished_at", "verified_at"}
_PITR_FIELDS = tuple(f.name for f in PitrBaseBackup._meta.concrete_fields if f.name not in ("id", "backup"))


def manifest_name(storage_name: str) -> str:
    return storage_name + MANIFEST_SUFFIX


def manifest_of(backup_record: BackupRecord, *, pitr: PitrBaseBackup | None = None) -> dict[str, Any]:
    """The manifest of a record (with the PITR facts block when `pitr` is given)."""
    manifest: dict[str, Any] = {"manifest_version": MANIFEST_VERSION, "id": backup_record.pk}
    for name in MANIFEST_FIELDS:
        value = getattr(backup_record, name)
        manifest[name] = value.isoformat() if isinstance(value, datetime) else value
    if pitr is not None:
        manifest["pitr"] = {name: getattr(pitr, name) for name in _PITR_FIELDS}
    return manifest


def manifest_values(manifest: dict[str, Any]) -> dict[str, Any]:
    """The record field values a manifest holds (datetimes parsed; unknown keys ignored)."""
    values = {}
    for name in MANIFEST_FIELDS:
        if name not in manifest:
            continue
        value = manifest[name]
        if name in _DATETIME_FIELDS and isinstance(value, str):
            value = parse_datetime(value)
        values[name] = value
    return values


def manifest_pitr_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    """The PITR facts block of a base backup's manifest ({} for other backups)."""
    facts = manifest.get("pitr") or {}
    return {name: facts[name] for name in _PITR_FIELDS if name in facts}


def manifest_write(storage: Storage, storage_name: str, manifest: dict[str, Any]) -> str:
    """Writes (or replaces) the manifest of `storage_name` in `storage`; returns its name."""
    name = manifest_name(storage_name)
    data = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
    if is_local(storage):
        with atomic_writer(Path(storage.path(name)), replace=True) as handle:
            handle.write(data)
        return name
    if storage.exists(name):
        storage.delete(name)  # file_overwrite is off: saving over a name would pick another one
    saved = storage.save(name, ContentFile(data))
    if saved != name:
        raise UploadError(f"{storage_label(storage)} stored the manifest {name} as {saved}.")
    return name


def manifest_read(storage: Storage, name: str) -> dict[str, Any] | None:
    """The manifest stored as `name`, or None when it is unreadable or not a backup manifest."""
    try:
        with storage.open(name, "rb") as handle:
            manifest = json.loads(handle.read())
    except (OSError, ValueError) as exc:
        logger.warning("unreadable backup manifest %s in %s: %s", name, storage_label(storage), exc)
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("storage_name") else None


def manifest_beside(path: Path) -> dict[str, Any] | None:
    """The manifest next to a backup file given by path (an artifact copied out of storage), if any."""
    folder = FileSystemStorage(location=path.parent)
    name = manifest_name(path.name)
    return manifest_read(folder, name) if folder.exists(name) else None


def manifest_names(file_names: Iterator[str] | list[str]) -> list[str]:
    """The manifests among a storage's file names (see storage_file_names)."""
    return [name for name in file_names if name.endswith(MANIFEST_SUFFIX)]


def manifests_in(storage: Storage) -> list[str]:
    return manifest_names(storage_file_names(storage))


def manifest_save(backup_record: BackupRecord) -> None:
    """Rewrites the record's manifest in every place that holds its artifact.

    The local manifest must be written (its failure raises); the S3 one is refreshed when the artifact is
    there, and a failure there only logs (S3 catches up at the next upload or verification)."""
    pitr = PitrBaseBackup.objects.filter(backup=backup_record).first() if backup_record.kind == "base" else None
    manifest = manifest_of(backup_record, pitr=pitr)
    local = local_storage()
    if local.exists(backup_record.storage_name):
        manifest_write(local, backup_record.storage_name, manifest)
    remote = s3_storage()
    if backup_record.uploaded_to_s3 and remote is not None:
        try:
            if remote.exists(backup_record.storage_name):
                manifest_write(remote, backup_record.storage_name, manifest)
        except Exception as exc:  # boto3 errors of many kinds; the local manifest is written
            logger.warning("could not refresh the S3 manifest of %s: %s", backup_record.storage_name, exc)
