"""The catalog (BackupRecord rows) mirrors the manifests in storage, so it survives a restore:
`catalog_sync` rebuilds it from the manifests alone."""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.files.base import ContentFile
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from dbops.conf import operations_alias
from dbops.models import BackupRecord
from dbops.artifacts.storage import (
    iter_manifest_names,
    local_storage,
    manifest_name,
    read_manifest,
    s3_storage,
    write_local_manifest,
)

logger = logging.getLogger(__name__)

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


def manifest_of(backup_record: BackupRecord) -> dict[str, Any]:
    manifest: dict[str, Any] = {"manifest_version": 1, "id": backup_record.pk}
    for name in MANIFEST_FIELDS:
        value = getattr(backup_record, name)
        manifest[name] = value.isoformat() if isinstance(value, datetime) else value
    return manifest


def manifest_save(backup_record: BackupRecord) -> None:
    """Rewrites the local manifest (and the S3 one when the artifact is there) from the record."""
    manifest = manifest_of(backup_record)
    if local_storage().exists(backup_record.storage_name):
        write_local_manifest(backup_record.storage_name, manifest)
    if backup_record.uploaded_to_s3 and s3_storage() is not None:
        storage = s3_storage()
        name = manifest_name(backup_record.storage_name)
        try:
            if storage.exists(name):
                storage.delete(name)
            storage.save(name, ContentFile(json.dumps(manifest, indent=2, default=str)))
        except Exception as exc:  # the local manifest is authoritative; S3 catches up at the next upload
            logger.warning("could not refresh the S3 manifest of %s: %s", backup_record.storage_name, exc)


@dataclass
class SyncResult:
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # records whose artifact is in no storage


def _fields_from(manifest: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for name in MANIFEST_FIELDS:
        if name not in manifest:
            continue
        value = manifest[name]
        if name in _DATETIME_FIELDS and isinstance(value, str):
            value = parse_datetime(value)
        values[name] = value
    return values


def _collect_manifests(include_s3: bool) -> tuple[dict[str, dict[str, Any]], bool]:
    """Manifests by storage name, and whether every storage could be listed."""
    # A bucket may be shared by several installations: only this one's databases belong in its catalog.
    own_databases = {str(config["NAME"]) for config in connections.settings.values()}
    found: dict[str, dict[str, Any]] = {}
    complete = True
    sources = [local_storage()]
    if include_s3 and s3_storage() is not None:
        sources.append(s3_storage())
    for storage in sources:
        try:
            names = list(iter_manifest_names(storage))
        except Exception as exc:  # S3 unreachable: sync what the local storage knows
            logger.warning("cannot list backup manifests in %s: %s", type(storage).__name__, exc)
            complete = False
            continue
        for name in names:
            manifest = read_manifest(storage, name)
            if manifest is None or str(manifest.get("database_name")) not in own_databases:
                continue
            key = manifest["storage_name"]
            if key in found:  # the local copy wins, but S3 may know about the upload
                found[key]["uploaded_to_s3"] = found[key].get("uploaded_to_s3") or manifest.get("uploaded_to_s3")
                found[key]["s3_key"] = found[key].get("s3_key") or manifest.get("s3_key", "")
            else:
                found[key] = manifest
    return found, complete


def catalog_sync(*, include_s3: bool = True, mark_missing: bool = True) -> SyncResult:
    """Creates or updates a BackupRecord for every manifest in storage (keeping the manifest's id when
    it is free), and marks succeeded records whose artifact is in no storage as deleted."""
    result = SyncResult()
    manifests, complete = _collect_manifests(include_s3)
    with transaction.atomic(using=operations_alias()):
        existing = {record.storage_name: record for record in BackupRecord.objects.exclude(storage_name="")}
        for storage_name, manifest in sorted(manifests.items()):
            values = _fields_from(manifest)
            record = existing.get(storage_name)
            if record is None:
                wanted_id = manifest.get("id")
                record = BackupRecord(**values)
                if isinstance(wanted_id, int) and not BackupRecord.objects.filter(pk=wanted_id).exists():
                    record.pk = wanted_id
                record.save(force_insert=True)
                _pitr_facts_sync(record, manifest.get("pitr"))
                result.created.append(record.pk)
                continue
            _pitr_facts_sync(record, manifest.get("pitr"))
            changed = [name for name, value in values.items() if getattr(record, name) != value]
            if record.status == BackupRecord.Status.DELETED:
                changed = []  # a deleted record stays deleted even if a stray manifest remains
            if changed:
                for name in changed:
                    setattr(record, name, values[name])
                record.save(update_fields=changed)
                result.updated.append(record.pk)
        if mark_missing and complete:  # an unreachable S3 must not make its backups look deleted
            gone = BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED).exclude(
                storage_name__in=list(manifests)
            )
            result.missing = list(gone.values_list("pk", flat=True))
            gone.update(
                status=BackupRecord.Status.DELETED,
                deleted_at=timezone.now(),
                error="artifact not found in storage at sync",
            )
        _reset_sequence()
    return result


def _pitr_facts_sync(backup_record: BackupRecord, facts: dict[str, Any] | None) -> None:
    """A base backup's manifest carries its PITR facts (cluster, timeline, WAL range): restore that row too,
    or PITR restore and WAL retention would not know the backup after a catalog rebuild."""
    if not facts:
        return
    from dbops.models import PitrBaseBackup

    known = {model_field.name for model_field in PitrBaseBackup._meta.concrete_fields} - {"id", "backup"}
    PitrBaseBackup.objects.update_or_create(
        backup=backup_record, defaults={name: value for name, value in facts.items() if name in known}
    )


def _reset_sequence() -> None:
    """Ids taken from manifests may be above the sequence; move it past them."""
    connection = connections[operations_alias()]
    statements = connection.ops.sequence_reset_sql(no_style(), [BackupRecord])
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def backup_mark_stale(*, database_name: str) -> list[int]:
    """Marks RUNNING records of a database as failed. Call only while holding that database's backup
    lock: then no run of it is alive, so every RUNNING row belongs to a killed process."""
    stale = BackupRecord.objects.filter(status=BackupRecord.Status.RUNNING, database_name=database_name)
    ids = list(stale.values_list("pk", flat=True))
    if ids:
        stale.update(
            status=BackupRecord.Status.FAILED,
            finished_at=timezone.now(),
            error="interrupted: the process running this backup died (found stale by the next run)",
        )
    return ids


def looks_stale(backup_record: BackupRecord, *, max_silence_seconds: int = 120) -> bool:
    """A RUNNING row whose heartbeat is old, or whose process on this host is gone."""
    if backup_record.status != BackupRecord.Status.RUNNING:
        return False
    if backup_record.hostname == socket.gethostname() and backup_record.pid:
        try:
            os.kill(backup_record.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, owned by another user
        return False  # alive here (perhaps waiting on a lock, so no heartbeat): not stale
    # Another host: only the heartbeat can tell.
    beat = backup_record.heartbeat_at or backup_record.started_at
    return (timezone.now() - beat).total_seconds() > max_silence_seconds
