"""health_check: is this installation able to serve, and are its backups fresh?

Levels, worst wins:
- unhealthy: the application cannot serve requests (database unreachable, migrations not applied, the
  database missing after an interrupted restore that could not be repaired).
  `health_check` exits 2, `/health/` answers 503 so a load balancer takes the node out.
- degraded: it serves, but something needs an operator (Redis, celery workers, S3, free disk,
  backup or verification older than its threshold). Exit 1, HTTP 200: taking nodes out of a load
  balancer would not bring a backup back.
- ok: exit 0, HTTP 200.
Each probe has a short timeout (HEALTH_TIMEOUT_SECONDS) and never raises: a failure is a result.
The first check, interrupted_restores, repairs what killed restores left (dbops.services.backups.leftovers)
before the database is probed, so a database put back by it counts as up.

`/health/` serves `health_report_cached`: the report is kept for HEALTH_CACHE_SECONDS per process,
and concurrent requests during a refresh wait for the one computation instead of each running the
probes (a dead worker would otherwise cost every poll the ping timeout). `health_check` (and the
command) always computes afresh.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Max, Q
from django.utils import timezone

from dbops.conf import celery_app, operations_alias
from dbops.engines import get_connector
from dbops.masking import mask_secrets
from dbops.models import BackupRecord
from dbops.services.backups.leftovers import restore_leftovers_recover
from dbops.services.ops.s3_probe import s3_client

OK, DEGRADED, UNHEALTHY, SKIPPED = "ok", "degraded", "unhealthy", "skipped"
_RANK = {OK: 0, SKIPPED: 0, DEGRADED: 1, UNHEALTHY: 2}
EXIT_CODES = {OK: 0, DEGRADED: 1, UNHEALTHY: 2}


@dataclass
class CheckResult:
    name: str
    status: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthReport:
    status: str
    checks: list[CheckResult]
    checked_at: datetime

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checked_at": self.checked_at.isoformat(),
            "checks": {check.name: {k: v for k, v in asdict(check).items() if k != "name"} for check in self.checks},
        }


def health_check(*, using: str = DEFAULT_DB_ALIAS, now: datetime | None = None) -> HealthReport:
    """Runs every probe and returns the report; the overall status is the worst single status."""
    now = now or timezone.now()
    timeout = float(settings.HEALTH_TIMEOUT_SECONDS)
    ops = operations_alias()
    checks = [_interrupted_restores(), _database(using)]
    database_up = checks[1].status == OK
    if ops != using:  # the catalog and schedules live apart from the data
        checks.append(_database(ops, name="operations_database"))
        database_up = database_up and checks[-1].status == OK
    checks.append(_migrations(using, ops) if database_up else _skipped("migrations", "database unreachable"))
    redis_check = _redis(timeout)
    checks += [redis_check, _celery_workers(timeout, redis_check), _s3(timeout), _disk()]
    if database_up:
        checks += _backup_ages(using, now)
    else:
        checks += [_skipped(name, "database unreachable") for name in ("last_backup", "last_verified_backup")]
    status = max((check.status for check in checks), key=_RANK.__getitem__)
    return HealthReport(status=OK if status == SKIPPED else status, checks=checks, checked_at=now)


@dataclass(frozen=True)
class CachedReport:
    report: HealthReport
    age_seconds: float  # since the probes started


_cached: dict[str, tuple[float, HealthReport]] = {}  # alias -> (monotonic start of its probes, report)
_refresh_lock = threading.Lock()
_clock = time.monotonic


def health_report_cached(*, using: str = DEFAULT_DB_ALIAS, max_age_seconds: float | None = None) -> CachedReport:
    """The last report of this process when younger than `max_age_seconds` (HEALTH_CACHE_SECONDS;
    0 disables the cache), else a fresh one. One thread refreshes; the others wait and share it."""
    max_age = float(settings.HEALTH_CACHE_SECONDS if max_age_seconds is None else max_age_seconds)
    if max_age <= 0:
        return CachedReport(health_check(using=using), 0.0)
    seen = _cached.get(using)
    if seen is not None and 0 <= _clock() - seen[0] < max_age:
        return CachedReport(seen[1], _clock() - seen[0])
    with _refresh_lock:
        entry = _cached.get(using)
        # Refreshed by the thread we waited for: share it, even when its probes took longer than the TTL.
        if entry is None or entry is seen:
            entry = _cached[using] = (_clock(), health_check(using=using))
    return CachedReport(entry[1], _clock() - entry[0])


def health_cache_clear() -> None:
    """Forgets the cached reports of this process (the next request computes afresh)."""
    _cached.clear()


def _skipped(name: str, why: str) -> CheckResult:
    return CheckResult(name, SKIPPED, why)


def _probe(name: str, failure_status: str, probe: Callable[[], CheckResult]) -> CheckResult:
    """Turns any exception of a probe into a result (the report must always be produced)."""
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - every failure of an external system is a finding, not a crash
        return CheckResult(name, failure_status, f"{type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return mask_secrets(text.splitlines()[0]) if text else "no details"


def _interrupted_restores() -> CheckResult:
    name = "interrupted_restores"

    def probe() -> CheckResult:
        report = restore_leftovers_recover()
        details = report.as_dict()
        if report.failed:
            status = UNHEALTHY if report.database_missing else DEGRADED
            return CheckResult(name, status, " ".join(report.failed + report.done), details)
        found = ["repaired: " + " ".join(report.done)] if report.done else []
        found += ["still running, left alone: " + " ".join(report.left_alone)] if report.left_alone else []
        if found:
            return CheckResult(name, OK, "; ".join(found), details)
        if report.unreachable:
            return _skipped(name, "database unreachable")
        return CheckResult(name, OK, "nothing left behind by interrupted restores", details)

    return _probe(name, DEGRADED, probe)


def _database(using: str, *, name: str = "database") -> CheckResult:
    def probe() -> CheckResult:
        connection = connections[using]
        started = time.perf_counter()
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        engine = get_connector(using).engine
        return CheckResult(name, OK, f"{engine} answered", {"latency_ms": latency_ms})

    return _probe(name, UNHEALTHY, probe)


def _migrations(*aliases: str) -> CheckResult:
    def probe() -> CheckResult:
        pending = []
        for alias in dict.fromkeys(aliases):
            executor = MigrationExecutor(connections[alias])
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
            where = "" if alias == DEFAULT_DB_ALIAS else f" ({alias})"
            pending += [f"{migration.app_label}.{migration.name}{where}" for migration, _ in plan]
        if pending:
            return CheckResult("migrations", UNHEALTHY, f"{len(pending)} not applied", {"pending": pending})
        return CheckResult("migrations", OK, "all applied")

    return _probe("migrations", UNHEALTHY, probe)


def _redis(timeout: float) -> CheckResult:
    url = getattr(settings, "REDIS_URL", None)
    if not url:
        return _skipped("redis", "REDIS_HOST unset: tasks run in-process")

    def probe() -> CheckResult:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            started = time.perf_counter()
            client.ping()
            latency_ms = round((time.perf_counter() - started) * 1000, 2)
        finally:
            client.close()
        return CheckResult("redis", OK, "ping answered", {"latency_ms": latency_ms})

    return _probe("redis", DEGRADED, probe)


def _celery_workers(timeout: float, redis_check: CheckResult) -> CheckResult:
    if redis_check.status == SKIPPED:
        return _skipped("celery_workers", "REDIS_HOST unset: tasks run in-process")
    if redis_check.status != OK:
        return CheckResult("celery_workers", DEGRADED, "not asked: the broker (Redis) is unreachable")

    def probe() -> CheckResult:
        app = celery_app()
        with app.connection_for_write(settings.CELERY_BROKER_URL) as connection:
            # limit=1: return on the first answer instead of always waiting for the whole timeout.
            replies = app.control.ping(timeout=timeout, limit=1, connection=connection)
        workers = sorted(name for reply in replies for name in reply)
        if not workers:
            return CheckResult("celery_workers", DEGRADED, f"no worker answered a ping within {timeout:g}s")
        return CheckResult("celery_workers", OK, f"{len(workers)} answered", {"workers": workers})

    return _probe("celery_workers", DEGRADED, probe)


def _s3(timeout: float) -> CheckResult:
    storage = settings.STORAGES.get("backups_s3")
    if not storage:
        return _skipped("s3", "S3_BACKUP_BUCKET unset")
    options = storage["OPTIONS"]

    def probe() -> CheckResult:
        started = time.perf_counter()
        s3_client(options, timeout).head_bucket(Bucket=options["bucket_name"])
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return CheckResult("s3", OK, "bucket reachable", {"latency_ms": latency_ms})

    return _probe("s3", DEGRADED, probe)


def _disk() -> CheckResult:
    folder = Path(settings.BACKUP_DIR)
    minimum_mb = int(settings.HEALTH_MIN_FREE_DISK_MB)

    def probe() -> CheckResult:
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent  # BACKUP_DIR is created on first backup
        free_mb = shutil.disk_usage(existing).free // (1024 * 1024)
        details = {"free_mb": free_mb, "min_free_mb": minimum_mb}
        if free_mb < minimum_mb:
            return CheckResult("disk", DEGRADED, f"{free_mb:,} MB free in BACKUP_DIR, below {minimum_mb:,} MB", details)
        return CheckResult("disk", OK, f"{free_mb:,} MB free in BACKUP_DIR", details)

    return _probe("disk", DEGRADED, probe)


def _backup_ages(using: str, now: datetime) -> list[CheckResult]:
    def probe() -> list[CheckResult]:
        records = BackupRecord.objects.filter(database_alias=using)
        last_backup = (
            records.filter(status=BackupRecord.Status.SUCCEEDED, finished_at__isnull=False)
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
            .first()
        )
        verification = BackupRecord.VerificationStatus
        # One query: the newest pass, and the backups whose key is not in the ring. Those are not a
        # failure (the backups are fine, this installation lacks their key): only a note for the operator.
        verifications = records.aggregate(
            last_verified=Max("verified_at", filter=Q(verification_status=verification.PASSED)),
            key_unavailable=Count(
                "pk", filter=Q(status=BackupRecord.Status.SUCCEEDED, verification_status=verification.KEY_UNAVAILABLE)
            ),
        )
        last_verified, key_unavailable = verifications["last_verified"], verifications["key_unavailable"]
        max_hours = float(settings.VERIFY_MAX_AGE_HOURS)
        verified = _age("last_verified_backup", "verified backup", last_verified, now, max_hours)
        if key_unavailable:
            verified.details["key_unavailable"] = key_unavailable
            verified.message += f"; {key_unavailable} backup(s) need a key that is not in BACKUP_ENCRYPTION_KEYS"
        return [
            _age("last_backup", "successful backup", last_backup, now, float(settings.BACKUP_MAX_AGE_HOURS)),
            verified,
        ]

    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - e.g. the dbops tables are missing before migrate
        failed = f"{type(exc).__name__}: {_first_line(exc)}"
        return [CheckResult(name, DEGRADED, failed) for name in ("last_backup", "last_verified_backup")]


def _age(name: str, what: str, at: datetime | None, now: datetime, max_hours: float) -> CheckResult:
    if at is None:
        return CheckResult(name, DEGRADED, f"no {what} yet", {"max_age_hours": max_hours})
    age_hours = round((now - at) / timedelta(hours=1), 2)
    details = {"at": at.isoformat(), "age_hours": age_hours, "max_age_hours": max_hours}
    if age_hours > max_hours:
        return CheckResult(name, DEGRADED, f"last {what} is {age_hours:g}h old (limit {max_hours:g}h)", details)
    return CheckResult(name, OK, f"last {what} is {age_hours:g}h old", details)
