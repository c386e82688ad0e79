"""The catalog (BackupRecord rows) mirrors the manifests in storage, so it survives a restore:
`catalog_sync` rebuilds it from the manifests alone.

Rules of a sync:
- only our own delete (backup_delete) marks a record `deleted`; a sync never does;
- an artifact not found in a place it was in is `missing` there, and `present` again when it
  reappears; a record whose artifact is in no place is `missing` (and `succeeded` again later);
- a place that cannot be looked at (S3 unreachable, folder unreadable) changes nothing about it;
- a sync that would make every visible record missing (an unmounted or emptied folder, say) is
  refused with one line naming what each storage held, and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.management.color import no_style
from django.db import connections, router, transaction
from django.utils import timezone

from dbops.artifacts.manifest import (
    MANIFEST_SUFFIX,
    manifest_pitr_facts,
    manifest_read,
    manifest_values,
)
from dbops.artifacts.storage import LOCAL, S3, local_storage, s3_storage, s3_url, storage_file_names, storage_label
from dbops.exceptions import CatalogSyncRefused
from dbops.models import BackupRecord
from dbops.models.runs import owner_process_gone

logger = logging.getLogger(__name__)

Presence = BackupRecord.Presence
Status = BackupRecord.Status
_HELD = (Presence.PRESENT, Presence.DAMAGED)  # a copy is there (damage is verification's business)


@dataclass
class SyncResult:
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # records whose artifact is now in no storage
    reappeared: list[int] = field(default_factory=list)  # records missing before, found again
    messages: list[str] = field(default_factory=list)  # one line per change of presence, per storage not seen


@dataclass
class _Place:
    """One storage as the sync saw it: its file names (None when it could not be listed) and manifests."""

    place: str
    label: str
    names: set[str] | None = None
    error: str = ""
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        if self.names is None:
            return f"{self.label}: could not be listed ({self.error})"
        return f"{self.label}: {len(self.manifests)} backup manifest(s) among {len(self.names)} file(s)"


def _look(place: str, storage, own_databases: set[str]) -> _Place:
    seen = _Place(place=place, label=storage_label(storage))
    try:
        seen.names = set(storage_file_names(storage))
    except Exception as exc:  # S3 unreachable, folder unreadable: this place says nothing
        seen.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        logger.warning("cannot list %s: %s", seen.label, seen.error)
        return seen
    for name in sorted(seen.names):
        if not name.endswith(MANIFEST_SUFFIX):
            continue
        manifest = manifest_read(storage, name)
        # A bucket may be shared by several installations: only this one's databases belong in its catalog.
        if manifest is not None and str(manifest.get("database_name")) in own_databases:
            seen.manifests[manifest["storage_name"]] = manifest
    return seen


def _merged_manifests(places: list[_Place]) -> dict[str, dict[str, Any]]:
    """Manifests by storage name: the local copy wins, but S3 may know about the upload."""
    found: dict[str, dict[str, Any]] = {}
    for seen in places:
        for key, manifest in seen.manifests.items():
            if key in found:
                found[key]["uploaded_to_s3"] = found[key].get("uploaded_to_s3") or manifest.get("uploaded_to_s3")
                found[key]["s3_key"] = found[key].get("s3_key") or manifest.get("s3_key", "")
            else:
                found[key] = dict(manifest)
    return found


def catalog_sync(*, include_s3: bool = True) -> SyncResult:
    """Creates or updates a BackupRecord for every manifest in storage (keeping the manifest's id when
    it is free) and brings every record's per-place presence up to date (rules in the module docstring).

    Raises CatalogSyncRefused, changing nothing, when the sync would leave no visible backup."""
    result = SyncResult()
    own_databases = {str(config["NAME"]) for config in connections.settings.values()}
    places = [_look(LOCAL, local_storage(), own_databases)]
    remote = s3_storage()
    if include_s3 and remote is not None:
        places.append(_look(S3, remote, own_databases))
    result.messages += [f"{seen.describe()}: left as it was." for seen in places if seen.names is None]
    manifests = _merged_manifests(places)
    using = router.db_for_write(BackupRecord)
    with transaction.atomic(using=using):
        records = {r.storage_name: r for r in BackupRecord.objects.using(using).exclude(storage_name="")}
        visible_before = {r.pk for r in records.values() if r.status == Status.SUCCEEDED}
        for storage_name, manifest in sorted(manifests.items()):
            record = records.get(storage_name)
            if record is None:
                records[storage_name] = _create(manifest, using, result)
            else:
                _update(record, manifest, result)
        for record in records.values():
            if record.status in (Status.SUCCEEDED, Status.MISSING):
                _presence_sync(record, places, remote, result)
        if visible_before and not any(r.status == Status.SUCCEEDED for r in records.values()):
            raise CatalogSyncRefused(
                f"Refusing to sync the catalog: it would mark all {len(visible_before)} backup(s) missing "
                f"({'; '.join(seen.describe() for seen in places)}). Nothing was changed: check that the "
                "backup storage is mounted and reachable."
            )
        _reset_sequence(using)
    return result


def _create(manifest: dict[str, Any], using: str, result: SyncResult) -> BackupRecord:
    record = BackupRecord(**manifest_values(manifest))
    wanted_id = manifest.get("id")
    if isinstance(wanted_id, int) and not BackupRecord.objects.using(using).filter(pk=wanted_id).exists():
        record.pk = wanted_id
    record.save(force_insert=True, using=using)
    _pitr_facts_sync(record, manifest_pitr_facts(manifest))
    result.created.append(record.pk)
    return record


def _update(record: BackupRecord, manifest: dict[str, Any], result: SyncResult) -> None:
    _pitr_facts_sync(record, manifest_pitr_facts(manifest))
    if record.status == Status.DELETED:
        return  # a deleted record stays deleted even if a stray manifest remains
    values = manifest_values(manifest)
    if record.status in (Status.SUCCEEDED, Status.MISSING):
        values.pop("status", None)  # presence decides between these two
    changed = [name for name, value in values.items() if getattr(record, name) != value]
    if changed:
        for name in changed:
            setattr(record, name, values[name])
        record.save(update_fields=changed)
        result.updated.append(record.pk)


def _presence_sync(record: BackupRecord, places: list[_Place], remote, result: SyncResult) -> None:
    """Sets each place's presence from what the sync saw there, then the record's status from them."""
    changes: list[str] = []
    before = {LOCAL: record.local_presence, S3: record.s3_presence}
    location_before = record.location
    for seen in places:
        if seen.names is None:
            continue
        current = before[seen.place]
        if record.storage_name in seen.names:
            new = current if current in _HELD else Presence.PRESENT
        elif current in _HELD or (seen.place == S3 and record.uploaded_to_s3):
            new = Presence.MISSING
        else:
            new = current
        if new != current:
            setattr(record, f"{seen.place}_presence", new)
            changes.append(seen.place)
        if seen.place == LOCAL and new in _HELD:
            record.location = local_storage().path(record.storage_name)
    presences = (record.local_presence, record.s3_presence)
    status = record.status
    if any(presence in _HELD for presence in presences):
        status = Status.SUCCEEDED
    elif Presence.MISSING in presences:
        status = Status.MISSING
    result.messages += [_presence_message(record, place, remote, status) for place in changes]
    status_changed = status != record.status
    if status_changed:
        (result.reappeared if status == Status.SUCCEEDED else result.missing).append(record.pk)
        record.status = status
    if changes or status_changed or record.location != location_before:
        record.save(update_fields=["local_presence", "s3_presence", "status", "location"])


def _presence_message(record: BackupRecord, place: str, remote, status: str) -> str:
    if place == LOCAL:
        where = f"local storage ({local_storage().path(record.storage_name)})"
    else:
        where = f"S3 ({s3_url(remote, key=record.s3_key, name=record.storage_name)})"
    if getattr(record, f"{place}_presence") != Presence.MISSING:
        return f"Backup #{record.pk}: artifact back in {where}."
    if status == Status.MISSING:
        return (
            f"Backup #{record.pk}: artifact missing from {where} and in no other storage: "
            "marked missing until it reappears."
        )
    return f"Backup #{record.pk}: artifact missing from {where}; the other copy is still there."


def presence_record(backup_record: BackupRecord, copies: dict[str, str]) -> None:
    """Records what a restore or verification found in each place it looked (present, damaged, missing),
    and the status that follows: `missing` when no place holds it, `succeeded` when one does again."""
    if not copies:
        return
    for place, presence in copies.items():
        setattr(backup_record, f"{place}_presence", presence)
    presences = (backup_record.local_presence, backup_record.s3_presence)
    if any(presence in _HELD for presence in presences):
        backup_record.status = Status.SUCCEEDED
    elif backup_record.status == Status.SUCCEEDED and Presence.MISSING in presences:
        backup_record.status = Status.MISSING
    backup_record.save(update_fields=["local_presence", "s3_presence", "status"])


def _pitr_facts_sync(backup_record: BackupRecord, facts: dict[str, Any]) -> None:
    """A base backup's manifest carries its PITR facts (cluster, timeline, WAL range): restore that row too,
    or PITR restore and WAL retention would not know the backup after a catalog rebuild."""
    if not facts:
        return
    from dbops.models import PitrBaseBackup

    PitrBaseBackup.objects.update_or_create(backup=backup_record, defaults=facts)


def _reset_sequence(using: str) -> None:
    """Ids taken from manifests may be above the sequence; move it past them."""
    connection = connections[using]
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
    gone = owner_process_gone(hostname=backup_record.hostname, pid=backup_record.pid)
    if gone is not None:
        return gone  # alive here (perhaps waiting on a lock, so no heartbeat) is not stale
    # Another host: only the heartbeat can tell.
    beat = backup_record.heartbeat_at or backup_record.started_at
    return (timezone.now() - beat).total_seconds() > max_silence_seconds
