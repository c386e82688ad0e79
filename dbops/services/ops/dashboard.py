"""What the operations dashboard shows: the newest backup, the backup history of the last days, the
storage the backups occupy (local and S3) and the slowest statements the profiler recorded.
Read-only; a location that cannot be reached is reported, never raised."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Max
from django.db.models.functions import Coalesce
from django.utils import timezone

from dbops.conf import operations_alias
from dbops.instrumentation.profiling import slow_queries_top
from dbops.models import BackupRecord, PitrDrill, SlowQuery

logger = logging.getLogger(__name__)

LOCAL_STORAGE = "backups"
S3_STORAGE = "backups_s3"


@dataclass(frozen=True)
class BackupPoint:
    """One backup on the history chart."""

    backup_id: int
    started_at: datetime
    status: str
    size_bytes: int | None
    duration_seconds: float | None


@dataclass(frozen=True)
class DrillPoint:
    """One PITR drill on the RTO/RPO charts (`backup_id`: the base backup it replayed)."""

    backup_id: int | None
    started_at: datetime
    status: str
    recovery_seconds: float | None
    rpo_seconds: float | None


@dataclass(frozen=True)
class BackupAge:
    """How long ago one database's newest good backup finished, against the limit health_check applies."""

    database: str
    last_good_at: datetime | None
    hours: float | None  # None: never backed up
    limit_hours: float


@dataclass(frozen=True)
class StorageUsage:
    """Bytes and files under one backups storage; `error` says why it could not be measured."""

    label: str
    configured: bool
    files: int = 0
    total_bytes: int = 0
    error: str = ""


@dataclass
class DashboardSummary:
    now: datetime
    days: int
    last_backup: BackupRecord | None
    last_succeeded: BackupRecord | None
    history: list[BackupPoint]
    storage: list[StorageUsage]
    ages: list[BackupAge] = field(default_factory=list)
    slow_queries: list[SlowQuery] = field(default_factory=list)
    slow_queries_note: str = ""
    drills: list[DrillPoint] = field(default_factory=list)


def dashboard_summary(*, days: int = 60, slow_query_limit: int = 10, now: datetime | None = None) -> DashboardSummary:
    now = now or timezone.now()
    full_backups = BackupRecord.objects.exclude(kind=BackupRecord.Kind.BASE)
    slow_queries, slow_queries_note = _slow_queries(limit=slow_query_limit)
    return DashboardSummary(
        now=now,
        days=days,
        last_backup=full_backups.order_by("-started_at", "-id").first(),
        last_succeeded=full_backups.filter(status=BackupRecord.Status.SUCCEEDED).order_by("-started_at", "-id").first(),
        history=backup_history(days=days, now=now),
        storage=[storage_usage(alias=LOCAL_STORAGE), storage_usage(alias=S3_STORAGE)],
        ages=backup_ages(now=now),
        slow_queries=slow_queries,
        slow_queries_note=slow_queries_note,
        drills=drill_history(days=days, now=now),
    )


DRILL_POINTS_LIMIT = 500  # a weekly drill makes about nine in the dashboard's 60 days


def drill_history(*, days: int, now: datetime) -> list[DrillPoint]:
    rows = (
        PitrDrill.objects.filter(started_at__gte=now - timedelta(days=days), started_at__lte=now)
        .order_by("started_at", "id")
        .values_list("base_backup_id", "started_at", "status", "recovery_seconds", "rpo_seconds")[:DRILL_POINTS_LIMIT]
    )
    return [DrillPoint(*row) for row in rows]


def backup_history(*, days: int, now: datetime) -> list[BackupPoint]:
    rows = (
        BackupRecord.objects.filter(started_at__gte=now - timedelta(days=days), started_at__lte=now)
        .order_by("started_at", "id")
        .values_list("id", "started_at", "status", "size_bytes", "duration_seconds")
    )
    return [BackupPoint(*row) for row in rows]


def backup_ages(*, now: datetime) -> list[BackupAge]:
    """Per database alias (every configured one but the operations database, and any the catalog names), the
    newest succeeded full or safety backup: one grouped query, however long the catalog."""
    newest = dict(
        BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED)
        .exclude(kind=BackupRecord.Kind.BASE)
        .values("database_alias")
        .annotate(last=Max(Coalesce("finished_at", "started_at")))
        .values_list("database_alias", "last")
    )
    aliases = [alias for alias in settings.DATABASES if alias != operations_alias() or alias == DEFAULT_DB_ALIAS]
    aliases += sorted(alias for alias in newest if alias not in aliases)
    limit = float(settings.BACKUP_MAX_AGE_HOURS)
    return [
        BackupAge(
            database=alias,
            last_good_at=newest.get(alias),
            hours=(now - newest[alias]).total_seconds() / 3600 if newest.get(alias) else None,
            limit_hours=limit,
        )
        for alias in aliases
    ]


def storage_usage(*, alias: str) -> StorageUsage:
    label = "S3" if alias == S3_STORAGE else "local"
    if alias not in settings.STORAGES:
        return StorageUsage(label=label, configured=False)
    try:
        storage = storages[alias]
        files = total = 0
        for size in _file_sizes(storage):
            files += 1
            total += size
    except Exception as exc:  # an unreachable location is shown on the page, not raised
        logger.warning("backup storage %s could not be measured: %s", alias, exc)
        return StorageUsage(label=label, configured=True, error=f"{type(exc).__name__}: {exc}")
    return StorageUsage(label=label, configured=True, files=files, total_bytes=total)


def _file_sizes(storage: Storage) -> Iterator[int]:
    bucket = getattr(storage, "bucket", None)
    if bucket is not None:
        # S3: one listing request per 1,000 objects instead of a HEAD request per file.
        prefix = f"{storage.location.rstrip('/')}/" if storage.location else ""
        for summary in bucket.objects.filter(Prefix=prefix):
            yield summary.size
        return
    yield from _walk_sizes(storage, "")


def _walk_sizes(storage: Storage, folder: str) -> Iterator[int]:
    try:
        directories, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        yield storage.size(f"{folder}/{name}" if folder else name)
    for directory in directories:
        yield from _walk_sizes(storage, f"{folder}/{directory}" if folder else directory)


def _slow_queries(*, limit: int) -> tuple[list[SlowQuery], str]:
    slow_queries = slow_queries_top(limit=limit)
    if slow_queries:
        return slow_queries, ""
    note = "No slow statements recorded yet."
    if not settings.QUERY_PROFILING_ENABLED:
        note += " Profiling is off (QUERY_PROFILING_ENABLED=false)."
    return [], note
