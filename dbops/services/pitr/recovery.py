"""Point-in-time recovery for PostgreSQL: server settings check, base backups, restore to a moment,
and which archived WAL retention must keep.

A base backup is a tar-format, gzipped, self-contained one (WAL fetched) stored through the PITR storage
beside its `backup_manifest`, catalogued as a BackupRecord (kind base, format tar) plus a
PitrBaseBackup row with its cluster id and first WAL segment. WAL arrives continuously through the
server's archive_command (`archive_wal`, see wal_archive.py). A restore unpacks the newest base backup
finished before the target and configures recovery (restore_command = our `restore_wal`,
recovery_target_time, recovery.signal) so that starting the server replays exactly up to the target.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import socket
import tarfile
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from dbops.artifacts.manifest import manifest_of, manifest_write
from dbops.artifacts.storage import storage_put
from dbops.conf import operations_alias
from dbops.engines.postgresql.server import (
    PitrSettingsReport,
    Progress,
    SettingCheck,
    conf_literal,
    pitr_archive_command,
    pitr_restore_command,
    pitr_settings_check,
    run_basebackup,
    server_identity,
    server_params,
    server_start_command,
)
from dbops.engines.postgresql.wal import lsn_parse, wal_file_name, wal_segment_name, wal_segment_number
from dbops.exceptions import PitrError
from dbops.models import BackupRecord, PitrBaseBackup
from dbops.services.pitr.delta import base_backup_unpack_delta, delta_refusal
from dbops.services.pitr.restore_targets import RestoreTarget, restore_target_resolve
from dbops.services.pitr.wal_archive import (
    CHUNK,
    archived_cluster_ids,
    pitr_storage,
    wal_archived_names,
    wal_last_archived_at,
)
from dbops.services.pitr.wal_gaps import restore_wal_gap

__all__ = [
    "PitrRestoreResult",
    "PitrSettingsReport",
    "SettingCheck",
    "WalRetention",
    "base_backup_unpack",
    "pitr_archive_command",
    "pitr_base_backup_create",
    "pitr_restore",
    "pitr_settings_check",
    "pitr_wal_needed",
    "wal_segment_name",
]


# --- base backup -----------------------------------------------------------------------------------


def pitr_base_backup_create(
    *,
    using: str = DEFAULT_DB_ALIAS,
    storage: str | None = None,
    triggered_by: str = BackupRecord.Trigger.CLI,
    triggered_by_user: str = "",
    progress: Progress | None = None,
) -> BackupRecord:
    """Takes a base backup through the engine, stores it and catalogues it (status row kept up to date)."""
    report = pitr_settings_check(using=using)
    if report.problems:
        names = ", ".join(f"{check.name}={check.actual!r}" for check in report.problems)
        raise PitrError(f"The server is not set up for PITR ({names}); run `pitr setup` for the fixes.")
    storage_kind, backend = pitr_storage(storage)
    params = server_params(using)
    started = time.monotonic()
    record = BackupRecord.objects.create(
        kind=BackupRecord.Kind.BASE,
        status=BackupRecord.Status.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        hostname=socket.gethostname(),
        pid=os.getpid(),
        engine="postgresql",
        database_alias=using,
        database_name=params["dbname"],
        format=BackupRecord.Format.TAR,
        compression=BackupRecord.Compression.GZIP,
        triggered_by=triggered_by,
        triggered_by_user=triggered_by_user,
    )
    saved_names: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="dbops-basebackup-") as workdir:
            label = f"dbops base backup #{record.pk}"
            tool_version = run_basebackup(params, Path(workdir), label=label, progress=progress)
            manifest = json.loads((Path(workdir) / "backup_manifest").read_text())
            wal_range = manifest["WAL-Ranges"][0]
            identity = server_identity(using)
            cluster_id, segment_size = identity.cluster_id, identity.wal_segment_size
            server_version = identity.server_version
            folder = f"pitr/{cluster_id}/base/{record.started_at:%Y%m%dT%H%M%SZ}-{record.pk}"
            artifact = Path(workdir) / "base.tar.gz"
            sha256 = _sha256(artifact)
            for local_name in ("base.tar.gz", "backup_manifest"):
                # Complete or absent: atomic and durable locally, one upload on S3.
                saved_names.append(storage_put(backend, f"{folder}/{local_name}", Path(workdir) / local_name))
            storage_name = saved_names[0]
        timeline = int(wal_range["Timeline"])
        pitr = PitrBaseBackup(
            backup=record,
            cluster_id=cluster_id,
            timeline=timeline,
            start_lsn=wal_range["Start-LSN"],
            end_lsn=wal_range["End-LSN"],
            start_wal=wal_segment_name(timeline, wal_range["Start-LSN"], segment_size),
            end_wal=wal_segment_name(timeline, wal_range["End-LSN"], segment_size),
            wal_segment_size=segment_size,
            storage=storage_kind,
        )
        with transaction.atomic(using=operations_alias()):
            record.status = BackupRecord.Status.SUCCEEDED
            record.finished_at = timezone.now()
            record.duration_seconds = time.monotonic() - started
            record.size_bytes = backend.size(storage_name)
            record.sha256 = sha256
            record.storage_name = storage_name
            record.location = backend.path(storage_name) if storage_kind == "local" else ""
            record.uploaded_to_s3 = storage_kind == "s3"
            record.s3_key = storage_name if storage_kind == "s3" else ""
            present = BackupRecord.Presence.PRESENT
            record.local_presence, record.s3_presence = (present, "") if storage_kind == "local" else ("", present)
            record.server_version = server_version
            record.tool_version = tool_version
            record.save()
            pitr.save()
            # The catalog row and its PITR facts beside the artifact, so the catalog can be rebuilt from storage.
            saved_names.append(manifest_write(backend, storage_name, manifest_of(record, pitr=pitr)))
    except BaseException as exc:  # also Ctrl-C: the row must not stay "running"
        for name in saved_names:  # no half-stored backup left behind
            backend.delete(name)
        record.status = BackupRecord.Status.FAILED
        record.finished_at = timezone.now()
        record.error = str(exc) or type(exc).__name__
        record.local_presence = record.s3_presence = BackupRecord.Presence.NONE
        record.save(update_fields=["status", "finished_at", "error", "local_presence", "s3_presence"])
        if isinstance(exc, PitrError) or not isinstance(exc, Exception):
            raise
        raise PitrError(f"Base backup #{record.pk} failed: {exc}") from exc
    return record


# --- restore ---------------------------------------------------------------------------------------


@dataclass
class PitrRestoreResult:
    target_dir: Path
    target: RestoreTarget
    base_backup: BackupRecord
    restore_command: str
    start_command: str


def pitr_restore(
    *,
    target_dir: Path | str,
    target_time: datetime | None = None,
    target: RestoreTarget | None = None,
    backup_id: int | None = None,
    port: int | None = None,
    owner: str | None = None,
    keep_archiving: bool = False,
    python: str | None = None,
    progress: Progress | None = None,
    delta: bool = False,
    confirm: bool = False,
) -> PitrRestoreResult:
    """Builds a data directory that, once started, recovers to `target` (restore_targets: a time, LSN,
    transaction or restore point; or `target_time`) and opens for writes.

    Checks every input before touching the disk; on a failure after that, removes what it created.
    """
    target_dir = Path(target_dir).absolute()
    target = target or restore_target_resolve(target_time=target_time)
    if delta:
        delta_refusal(target_dir, confirm=confirm)
    elif target_dir.exists() and (not target_dir.is_dir() or any(target_dir.iterdir())):
        raise PitrError(
            f"{target_dir} exists and is not an empty directory; give a new one (or restore over it as a delta)."
        )
    if not target_dir.parent.is_dir():
        raise PitrError(f"{target_dir.parent} does not exist.")
    if port is not None and not 1 <= port <= 65535:
        raise PitrError(f"The port must be between 1 and 65535; got {port}.", parameter="port")
    owner_ids = _owner_ids(owner)
    record = restore_base_backup_checked(target=target, backup_id=backup_id)
    pitr = record.pitr
    _kind, backend = pitr_storage(pitr.storage)
    restore_command = pitr_restore_command(cluster_id=pitr.cluster_id, storage=pitr.storage, python=python)

    created = not target_dir.exists()
    target_dir.mkdir(mode=0o700, exist_ok=True)
    try:
        if delta:
            base_backup_unpack_delta(backend, record, target_dir)
        else:
            base_backup_unpack(backend, record, target_dir, progress)
        for stale in ("postmaster.pid", "postmaster.opts", "standby.signal"):
            (target_dir / stale).unlink(missing_ok=True)
        lines = [
            f"# dbops pitr restore: base backup #{record.pk}, target {target.text}",
            f"restore_command = {conf_literal(restore_command)}",
            target.conf_line,
            "recovery_target_action = 'promote'",
        ]
        if port is not None:
            lines.append(f"port = {port}")
        if not keep_archiving:  # a copy must not archive into the source cluster's WAL archive
            lines.append("archive_mode = 'off'")
        with (target_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write("\n" + "\n".join(lines) + "\n")
        (target_dir / "recovery.signal").touch()
        target_dir.chmod(0o700)
        if owner_ids:
            for path in [target_dir, *target_dir.rglob("*")]:
                os.lchown(path, *owner_ids)
    except BaseException:
        if delta:  # the directory was someone's before: never emptied (its checksum was proven first)
            raise
        if created:
            shutil.rmtree(target_dir, ignore_errors=True)
        else:
            for child in target_dir.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        raise
    return PitrRestoreResult(
        target_dir=target_dir,
        target=target,
        base_backup=record,
        restore_command=restore_command,
        start_command=server_start_command(target_dir),
    )


def restore_base_backup_checked(*, target: RestoreTarget, backup_id: int | None = None) -> BackupRecord:
    """The base backup a restore to `target` starts from, once the archive is known to hold every WAL
    file replay needs (PitrError naming what is missing otherwise)."""
    record = _base_backup_for(target, backup_id)
    pitr = record.pitr
    _archive_reaches(target, pitr)
    # Without a known moment (a transaction id), every gap after the base backup counts.
    gap = restore_wal_gap(pitr=pitr, target_time=target.time or timezone.now())
    lsn_only = target.time is None and target.lsn is not None
    if gap is not None and not (lsn_only and _past_lsn(gap.first_missing, pitr, target.lsn)):
        more = f" (and {gap.segments - 1} after it)" if gap.segments > 1 else ""
        raise PitrError(
            f"The WAL archive of cluster {pitr.cluster_id} is missing {gap.first_missing}{more}, which a restore from "
            f"base backup #{record.pk} to {target.text} needs; take a new base backup or choose an "
            "earlier target (`pitr status` shows the gaps)."
        )
    return record


def usable_base_backups():
    """The base backups a point-in-time restore can start from: succeeded, with their PITR facts."""
    return BackupRecord.objects.filter(
        kind=BackupRecord.Kind.BASE, status=BackupRecord.Status.SUCCEEDED, pitr__isnull=False
    ).select_related("pitr")


def _base_backup_for(target: RestoreTarget, backup_id: int | None) -> BackupRecord:
    usable = usable_base_backups()
    if backup_id is not None:
        record = usable.filter(pk=backup_id).first()
        if record is None:
            raise PitrError(f"Backup #{backup_id} is not a succeeded PITR base backup.")
        if target.time is not None and record.finished_at > target.time:
            raise PitrError(
                f"Base backup #{backup_id} finished at {record.finished_at.isoformat()}, after the target time."
            )
        if target.lsn is not None and lsn_parse(record.pitr.end_lsn) > target.lsn:
            raise PitrError(f"Base backup #{backup_id} ends at {record.pitr.end_lsn}, after the target {target.text}.")
        return record
    if target.time is not None:
        record = usable.filter(finished_at__lte=target.time).order_by("-finished_at").first()
    elif target.lsn is not None:
        before = [r for r in usable.order_by("-finished_at") if lsn_parse(r.pitr.end_lsn) <= target.lsn]
        record = before[0] if before else None
    else:
        raise PitrError(
            f"Which base backup precedes {target.text} cannot be told from the catalog: name the base backup.",
            parameter="backup_id",
        )
    if record is None:
        raise PitrError(f"No PITR base backup finished before {target.text}; take one with `pitr base-backup`.")
    return record


def _archive_reaches(target: RestoreTarget, pitr: PitrBaseBackup) -> None:
    """Recovery stops at the first record past the target, so WAL from after the target must be archived."""
    if target.time is not None:
        last_archived = wal_last_archived_at(cluster_id=pitr.cluster_id, storage=pitr.storage)
        if last_archived is None or last_archived <= target.time:
            when = last_archived.isoformat() if last_archived else "never"
            raise PitrError(
                f"The archive has no WAL from after {target.text} (last segment archived: {when}); "
                "run SELECT pg_switch_wal() on the server, or choose an earlier target."
            )
    elif target.lsn is not None:
        names = wal_archived_names(cluster_id=pitr.cluster_id, storage=pitr.storage)
        if not any(_past_lsn(name, pitr, target.lsn, or_at=True) for name in names if len(name) == 24):
            raise PitrError(
                f"The archive has no WAL segment holding {target.text} yet; run SELECT pg_switch_wal() on the server."
            )


def _past_lsn(segment: str, pitr: PitrBaseBackup, lsn: int, *, or_at: bool = False) -> bool:
    """Whether a segment lies past (or holds, with `or_at`) the LSN (timeline-independent position)."""
    holding = wal_file_name(1, wal_segment_number(lsn, pitr.wal_segment_size), pitr.wal_segment_size)[8:]
    return segment[8:24] >= holding if or_at else segment[8:24] > holding


class _HashingReader:
    """Hashes what the tar reader consumes and reports progress about every megabyte."""

    def __init__(self, stream, total: int, progress: Progress | None) -> None:
        self.stream, self.digest, self.total, self.progress = stream, hashlib.sha256(), total, progress
        self.done = self.reported = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        self.digest.update(chunk)
        self.done += len(chunk)
        if self.progress and (self.done - self.reported >= CHUNK or (not chunk and self.done != self.reported)):
            self.reported = self.done
            self.progress("unpacking base backup (bytes)", self.done, max(self.total, self.done))
        return chunk


def base_backup_unpack(backend, record: BackupRecord, target_dir: Path, progress: Progress | None) -> None:
    """Unpacks base.tar.gz into `target_dir`, hashing it on the way: PitrError when it does not match."""
    with backend.open(record.storage_name, "rb") as stored:
        reader = _HashingReader(stored, record.size_bytes or 0, progress)
        try:
            with tarfile.open(fileobj=reader, mode="r|gz") as archive:
                archive.extractall(target_dir, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise PitrError(f"Base backup #{record.pk} cannot be unpacked: {exc}") from exc
        while reader.read(CHUNK):  # hash any trailing bytes the tar reader did not need
            pass
    if reader.digest.hexdigest() != record.sha256:
        raise PitrError(f"Base backup #{record.pk} is corrupt: its SHA-256 does not match the catalog.")


def _owner_ids(owner: str | None) -> tuple[int, int] | None:
    if not owner:
        return None
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        raise PitrError(f"No such OS user {owner!r} to own the data directory.", parameter="owner") from None
    if os.geteuid() != 0 and entry.pw_uid != os.geteuid():
        raise PitrError(f"Only root can give the data directory to {owner!r}.")
    return entry.pw_uid, entry.pw_gid


# --- retention -------------------------------------------------------------------------------------


@dataclass
class WalRetention:
    needed: dict[str, list[str]]  # cluster id -> WAL names to keep
    removable: dict[str, list[str]]  # cluster id -> WAL names no kept base backup needs


def pitr_wal_needed(*, kept_base_backups: Iterable[BackupRecord], storage: str | None = None) -> WalRetention:
    """Which archived WAL the kept base backups still need: for each cluster, everything from the
    oldest kept base backup's first segment on (any timeline), and every timeline history file.
    A cluster with no kept base backup needs none of its WAL. Non-base records are ignored."""
    oldest_start: dict[str, str] = {}
    base_ids = [record.pk for record in kept_base_backups if record.kind == BackupRecord.Kind.BASE]
    for pitr in PitrBaseBackup.objects.filter(backup_id__in=base_ids):
        segment = pitr.start_wal[8:]  # timeline-independent position
        if pitr.cluster_id not in oldest_start or segment < oldest_start[pitr.cluster_id]:
            oldest_start[pitr.cluster_id] = segment
    retention = WalRetention(needed={}, removable={})
    for cluster_id in archived_cluster_ids(storage=storage):
        needed, removable = [], []
        start = oldest_start.get(cluster_id)
        for name in wal_archived_names(cluster_id=cluster_id, storage=storage):
            keep = start is not None and (name.endswith(".history") or name[8:24] >= start)
            (needed if keep else removable).append(name)
        retention.needed[cluster_id], retention.removable[cluster_id] = needed, removable
    return retention


# --- helpers ---------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
