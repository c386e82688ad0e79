"""The restore status rows (RestoreRecord): started before a restore touches anything, finished either
way, and carried across a restore of the database that holds them (else the history would be rewound
to the backup's time, and lose the very restore it records)."""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

from django.core.management.color import no_style
from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from dbops.engines import Connector
from dbops.models import BackupRecord, RestoreRecord
from dbops.models.runs import owner_process_gone

logger = logging.getLogger(__name__)


def restore_record_start(
    *,
    backup_record: BackupRecord | None,
    input_path: Path | None,
    tables: list[str],
    connector: Connector,
    source: str,
    by: str,
    user: str,
) -> RestoreRecord:
    """The running record, saved; unsaved (written at the finish) when the database has no table for it
    yet: a file restored into a fresh, unmigrated database must still work. `by`: the trigger; `tables`:
    the tables restored (empty: the whole database)."""
    restore_record = RestoreRecord(
        backup=backup_record,
        input_path=str(input_path or ""),
        source=source[:1024],
        database_alias=connector.alias,
        database_name=connector.database_name,
        tables=tables,
        triggered_by=by,
        triggered_by_user=user,
        started_at=timezone.now(),
        hostname=socket.gethostname(),
        pid=os.getpid(),
    )
    using = router.db_for_write(RestoreRecord)
    try:
        with transaction.atomic(using=using):
            restore_record.save(using=using)
    except DatabaseError as exc:
        logger.warning("restore record not written before the restore: %s", exc)
        restore_record.pk = None
    return restore_record


def _existing_backup_ids(using: str, ids: set[int | None]) -> set[int]:
    wanted = {pk for pk in ids if pk is not None}
    if not wanted:
        return set()
    return set(BackupRecord.objects.using(using).filter(pk__in=wanted).values_list("pk", flat=True))


def restore_record_finish(
    restore_record: RestoreRecord,
    *,
    status: str,
    started: float,
    error: str = "",
    safety_backup: BackupRecord | None = None,
    previous_database: str = "",
    warnings: list[str] | None = None,
) -> str | None:
    """Records the outcome; `started` is the restore's time.perf_counter() start. The row is written again
    if the restore replaced the table that held it (save() inserts when no row matches its id). Returns a
    warning instead of raising when the database cannot take the write: the restore's outcome stands."""
    using = router.db_for_write(RestoreRecord)
    restore_record.status = status
    restore_record.error = error[:10_000]
    restore_record.previous_database = previous_database
    restore_record.warnings = list(warnings or [])
    restore_record.finished_at = timezone.now()
    restore_record.duration_seconds = time.perf_counter() - started
    try:
        with transaction.atomic(using=using):
            known = _existing_backup_ids(using, {restore_record.backup_id, safety_backup and safety_backup.pk})
            restore_record.safety_backup_id = safety_backup.pk if safety_backup and safety_backup.pk in known else None
            if restore_record.backup_id not in known:
                restore_record.backup_id = None  # the source label still names it
            restore_record.save(using=using)
            _sequence_reset(using)
    except DatabaseError as exc:
        logger.error("could not record the outcome (%s) of restore #%s: %s", status, restore_record.pk, exc)
        return f"The restore record #{restore_record.pk} could not be marked {status}: {' '.join(str(exc).split())}"
    return None


INTERRUPTED = "interrupted: the process running this restore ended without finishing (found by the next dbops command)"


def restore_records_interrupted_fail() -> list[int]:
    """Marks failed the running restore records whose process on this host is gone (killed, or lost with
    its machine's power); a record of another host stays running, as nothing here can tell."""
    using = router.db_for_write(RestoreRecord)
    try:
        running = list(RestoreRecord.objects.using(using).filter(status=RestoreRecord.Status.RUNNING))
        dead = [r.pk for r in running if owner_process_gone(hostname=r.hostname, pid=r.pid)]
        if dead:
            RestoreRecord.objects.using(using).filter(pk__in=dead, status=RestoreRecord.Status.RUNNING).update(
                status=RestoreRecord.Status.FAILED, finished_at=timezone.now(), error=INTERRUPTED
            )
    except Exception as exc:  # noqa: BLE001 - no table yet, no server: nothing to mark, and the command goes on
        logger.debug("restore records not checked for interrupted runs: %s", exc)
        return []
    return dead


def restore_record_warn(restore_record: RestoreRecord, warnings: list[str]) -> None:
    """Adds warnings that came after the finish (the project's receivers) to a finished record."""
    restore_record.warnings = [*restore_record.warnings, *warnings]
    if restore_record.pk is None:
        return
    try:
        restore_record.save(using=router.db_for_write(RestoreRecord), update_fields=["warnings"])
    except DatabaseError as exc:
        logger.error("could not add warnings to restore #%s: %s", restore_record.pk, exc)


def restore_history_hold(*, database_alias: str) -> list[RestoreRecord] | None:
    """The restore history, when it lives in the database a restore is about to replace (else None)."""
    using = router.db_for_write(RestoreRecord)
    if using != database_alias:
        return None
    try:
        with transaction.atomic(using=using):
            return list(RestoreRecord.objects.using(using).order_by("pk"))
    except DatabaseError:  # no history table yet: nothing to carry
        return None


def restore_history_carry(held: list[RestoreRecord] | None) -> str | None:
    """Writes the held history into the restored database; a warning when it cannot (e.g. the backup
    predates the restore history table: `migrate` brings it back, the rows are lost)."""
    if not held:
        return None
    using = router.db_for_write(RestoreRecord)
    fields = [f.name for f in RestoreRecord._meta.concrete_fields if not f.primary_key]
    try:
        with transaction.atomic(using=using):
            known = _existing_backup_ids(using, {r.backup_id for r in held} | {r.safety_backup_id for r in held})
            for restore_record in held:
                if restore_record.backup_id not in known:
                    restore_record.backup_id = None
                if restore_record.safety_backup_id not in known:
                    restore_record.safety_backup_id = None
            RestoreRecord.objects.using(using).bulk_create(
                held, update_conflicts=True, unique_fields=["id"], update_fields=fields
            )
            _sequence_reset(using)
    except DatabaseError as exc:
        logger.warning("restore history not carried into the restored database: %s", exc)
        return (
            f"The restore history ({len(held)} rows) could not be written into the restored database "
            f"({' '.join(str(exc).split())}); run `manage.py migrate`."
        )
    return None


def _sequence_reset(using: str) -> None:
    """Ids carried across a restore may be above the restored sequence; move it past them."""
    connection = connections[using]
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), [RestoreRecord]):
            cursor.execute(statement)
