"""The PITR drill (weekly task `pitr_drill`, command `pitr drill`): restores the newest base backup
before "now minus an hour" and replays the archived WAL up to that moment in a scratch server, as an
operator would in an outage, and records on a PitrDrill row how long it took (RTO) and how far the
last replayed commit lies before the target (RPO). Nothing outside a temporary folder is written."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone

from dbops.engines.postgresql.scratch_cluster import ScratchRecovery, scratch_recovery_run, scratch_workspace
from dbops.engines.postgresql.server import pitr_restore_command
from dbops.exceptions import DbopsError, PitrError
from dbops.models import BackupRecord, PitrDrill
from dbops.services.pitr.recovery import base_backup_unpack, restore_base_backup_checked
from dbops.services.pitr.restore_targets import restore_target_resolve
from dbops.services.pitr.wal_archive import pitr_storage

logger = logging.getLogger(__name__)

TARGET_AGE = dt.timedelta(hours=1)
REPLAY_TIMEOUT = 3600.0


def pitr_drill_run(*, target_age: dt.timedelta = TARGET_AGE, timeout: float = REPLAY_TIMEOUT) -> PitrDrill | None:
    """Runs one drill and returns its (finished) record; None when no PITR base backup exists at all
    (PITR is not set up: nothing to drill). A drill that fails is recorded `failed`, then re-raised."""
    if not BackupRecord.objects.filter(kind=BackupRecord.Kind.BASE, status=BackupRecord.Status.SUCCEEDED).exists():
        return None
    started_at = timezone.now()
    drill = PitrDrill.objects.create(started_at=started_at, target_time=started_at - target_age)
    try:
        target = restore_target_resolve(target_time=drill.target_time)
        record = restore_base_backup_checked(target=target)
        drill.base_backup = record
        clock = time.perf_counter()
        recovery = base_backup_replay(record=record, target_time=drill.target_time, timeout=timeout)
        drill.recovery_seconds = round(time.perf_counter() - clock, 3)
    except DbopsError as exc:
        _finish(drill, PitrDrill.Status.FAILED, error=str(exc))
        raise
    except Exception as exc:
        _finish(drill, PitrDrill.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise PitrError(f"The PITR drill failed: {exc}") from exc
    drill.replayed_to_lsn = recovery.replay_lsn
    drill.wal_restored_from_archive = recovery.archive_segments_restored
    if recovery.last_replayed_at is not None:
        drill.rpo_seconds = round((drill.target_time - recovery.last_replayed_at).total_seconds(), 3)
    _finish(drill, PitrDrill.Status.SUCCEEDED)
    logger.info("PITR drill %s: RTO %.1fs, RPO %ss", drill.pk, drill.recovery_seconds, drill.rpo_seconds)
    return drill


def base_backup_replay(
    *,
    record: BackupRecord,
    target_time: dt.datetime,
    timeout: float,
    while_paused: Callable[[Any], None] | None = None,
) -> ScratchRecovery:
    """Unpacks base backup `record` into a scratch server, replays the archived WAL up to `target_time`
    and pauses there (handing the server's cursor to `while_paused`); the server is gone afterwards."""
    pitr = record.pitr
    _kind, backend = pitr_storage(pitr.storage)
    with scratch_workspace() as workspace:
        data_dir = workspace / "data"
        data_dir.mkdir(mode=0o700)
        base_backup_unpack(backend, record, data_dir, None)
        return scratch_recovery_run(
            data_dir,
            restore_command=pitr_restore_command(cluster_id=pitr.cluster_id, storage=pitr.storage),
            end_lsn=pitr.end_lsn,
            database=record.database_name or "postgres",
            users=[(settings.DATABASES.get(record.database_alias) or {}).get("USER") or "postgres", "postgres"],
            timeout=timeout,
            target_time=target_time,
            while_paused=while_paused,
        )


def _finish(drill: PitrDrill, status: str, *, error: str = "") -> None:
    drill.status, drill.error, drill.finished_at = status, error, timezone.now()
    drill.save()
