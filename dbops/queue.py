"""Queueing the long backup jobs for a worker, the way the admin (and any other front) asks for them
(beside dbops.tasks, which it sends: the services below it never reach up to the task layer):
`backup_enqueue`, `verify_enqueue`, `restore_enqueue`, `table_restore_enqueue`. Each checks first whether
the job can run at all (the same refusal the synchronous service gives), then sends one task when the
caller's transaction commits, with a task id of its own so the front can point at its TaskRun. Without a broker
(REDIS_HOST unset) the task has already run in-process when the call returns: `ran_in_process` says so.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial

from django.db import DEFAULT_DB_ALIAS, transaction

from dbops.exceptions import QueueUnavailable, RestoreError, VerificationError
from dbops.models import BackupRecord
from dbops.services.backups.restore import restore_refusal
from dbops.services.backups.verify import verification_refusal


@dataclass(frozen=True)
class Enqueued:
    task_id: str
    ran_in_process: bool  # no broker: the job ran when the caller's transaction committed


def _send(task, *, kwargs: dict) -> Enqueued:
    from kombu.exceptions import OperationalError as BrokerUnreachable

    task_id = str(uuid.uuid4())
    try:
        transaction.on_commit(partial(task.apply_async, kwargs=kwargs, task_id=task_id))
    except BrokerUnreachable as exc:
        raise QueueUnavailable(f"The task queue cannot be reached, so nothing was started: {exc}") from exc
    return Enqueued(task_id=task_id, ran_in_process=bool(task.app.conf.task_always_eager))


def backup_enqueue(*, database: str = DEFAULT_DB_ALIAS, triggered_by: str, triggered_by_user: str = "") -> Enqueued:
    """Queues one managed backup of `database` (S3 upload when a bucket is configured, as scheduled)."""
    from dbops.tasks import run_backup

    return _send(
        run_backup, kwargs={"database": database, "triggered_by": triggered_by, "triggered_by_user": triggered_by_user}
    )


def verify_enqueue(*, backup_record: BackupRecord, requested_by: str = "", restore_test: bool = True) -> Enqueued:
    """Queues a verification (by default a restore test) of one backup; refuses one that cannot be verified."""
    from dbops.tasks import verify_backup

    refusal = verification_refusal(backup_record)
    if refusal:
        raise VerificationError(refusal)
    kwargs = {"backup_id": backup_record.pk, "restore_test": restore_test, "requested_by": requested_by}
    return _send(verify_backup, kwargs=kwargs)


def restore_enqueue(
    *,
    backup_record: BackupRecord,
    requested_by: str,
    trigger: str = BackupRecord.Trigger.ADMIN,
    tables: list[str] | None = None,
) -> Enqueued:
    """Queues the restore of one backup into its own database (a safety backup first); refuses one that
    cannot be restored there. The caller has already had the restore confirmed."""
    from dbops.tasks import restore_backup

    refusal = restore_refusal(backup_record=backup_record, database=backup_record.database_alias)
    if refusal:
        raise RestoreError(refusal)
    kwargs = {"backup_id": backup_record.pk, "tables": tables, "requested_by": requested_by, "trigger": trigger}
    return _send(restore_backup, kwargs=kwargs)


def table_restore_enqueue(*, plan, requested_by: str) -> Enqueued:
    """Queues a confirmed `pitr restore-table` (dbops.services.pitr.table_restore.TableRestorePlan): the
    plan was checked when the operator confirmed it, and is checked again when the task runs."""
    from dbops.tasks import pitr_restore_table

    kwargs = {
        "table": plan.table,
        "target_time": plan.target_time.isoformat(),
        "into": plan.into,
        "database": plan.database_alias,
        "requested_by": requested_by,
        "trigger": BackupRecord.Trigger.ADMIN,
    }
    return _send(pitr_restore_table, kwargs=kwargs)
