"""What the scheduled tasks do (dbops.tasks only parses arguments and retries): each run is keyed by
its celery task id in a TaskRun row, so a redelivered or duplicated message does not do the work
twice, and every outcome is written to the records (TaskRun, BackupRecord, RetentionPolicy)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from dbops.conf import operations_alias
from dbops.exceptions import (
    BackupNotFound,
    ConfigurationError,
    DbopsError,
    RetentionError,
    UploadError,
    VerificationError,
)
from dbops.models import BackupRecord, RetentionPolicy, TaskRun
from dbops.models.runs import owner_process_gone
from dbops.services.backups.create import backup_create, backup_upload_retry
from dbops.services.backups.retention import retention_run
from dbops.services.backups.verify import backup_latest, backup_verify
from dbops.services.datamigration.snapshots import snapshot_prune

logger = logging.getLogger(__name__)

# A RUNNING TaskRun from another host is trusted until the longest task could still be running.
MAX_TASK_SECONDS = 3 * 3600
# Finished TaskRun rows older than this are removed by the retention task.
TASK_RUN_HISTORY_DAYS = 90


def _alive_elsewhere(task_run: TaskRun) -> bool:
    if task_run.pid == os.getpid() and task_run.hostname == socket.gethostname():
        return False  # this very process: a redelivery to the worker that claimed it
    gone = owner_process_gone(hostname=task_run.hostname, pid=task_run.pid)
    if gone is not None:
        return not gone
    return timezone.now() - task_run.started_at < dt.timedelta(seconds=MAX_TASK_SECONDS)


def task_run_execute(*, task_id: str, task_name: str, arguments: dict, action: Callable[[TaskRun], dict]) -> dict:
    """Runs `action` once per task id: a delivery whose run already succeeded, or is running in a
    live process, does nothing and says so; a failed or dead run is attempted again."""
    with transaction.atomic(using=operations_alias()):
        task_run, created = TaskRun.objects.select_for_update().get_or_create(
            task_id=task_id, defaults={"task_name": task_name, "started_at": timezone.now(), "arguments": arguments}
        )
        if not created and task_run.status == TaskRun.Status.SUCCEEDED:
            return {"task_run": task_run.pk, "skipped": "already succeeded", **task_run.result}
        if not created and task_run.status == TaskRun.Status.RUNNING and _alive_elsewhere(task_run):
            return {"task_run": task_run.pk, "skipped": f"running in process {task_run.pid} on {task_run.hostname}"}
        task_run.status = TaskRun.Status.RUNNING
        task_run.attempts += 1
        task_run.started_at = timezone.now()
        task_run.finished_at = None
        task_run.hostname, task_run.pid = socket.gethostname(), os.getpid()
        task_run.error = ""
        task_run.save()
    try:
        result = action(task_run)
    except BaseException as exc:
        task_run.status = TaskRun.Status.FAILED
        task_run.finished_at = timezone.now()
        task_run.error = f"{type(exc).__name__}: {exc}"
        task_run.save()
        raise
    task_run.status = TaskRun.Status.SUCCEEDED
    task_run.finished_at = timezone.now()
    task_run.result = result
    task_run.save()
    return {"task_run": task_run.pk, **result}


def scheduled_backup(
    *,
    task_id: str,
    database: str = DEFAULT_DB_ALIAS,
    compression: str = "zstd",
    fmt: str = "custom",
    upload_s3: bool | None = None,
    local_copy: bool | None = None,
    encrypt: bool = False,
    tag: str = "",
    triggered_by: str = BackupRecord.Trigger.SCHEDULE,
    triggered_by_user: str = "",
) -> dict:
    """A managed backup triggered by the schedule; `upload_s3=None` uploads when S3 is configured, and
    `local_copy=None` keeps a local copy unless settings.BACKUP_LOCAL_COPY is off (then S3 only)."""
    upload = bool(settings.S3_BACKUP_BUCKET) if upload_s3 is None else upload_s3
    keep_local = (not upload or settings.BACKUP_LOCAL_COPY) if local_copy is None else local_copy
    arguments = {"database": database, "compression": compression, "fmt": fmt, "upload_s3": upload, "tag": tag}
    if not keep_local:
        arguments["local_copy"] = False

    def action(task_run: TaskRun) -> dict:
        try:
            # The arguments recorded on the TaskRun are the backup's own, plus who asked for it.
            by = {"triggered_by": triggered_by, "triggered_by_user": triggered_by_user}
            backup_record = backup_create(**arguments, encrypt=encrypt, **by)
        except UploadError as exc:
            task_run.backup_record = exc.backup_record  # safe locally; retry_failed_uploads copies it later
            raise
        task_run.backup_record = backup_record
        return {
            "backup_id": backup_record.pk,
            "size_bytes": backup_record.size_bytes,
            "uploaded_to_s3": backup_record.uploaded_to_s3,
        }

    return task_run_execute(task_id=task_id, task_name="run_backup", arguments=arguments, action=action)


def task_runs_prune(*, days: int = TASK_RUN_HISTORY_DAYS) -> int:
    """Forgets finished task runs older than `days` (the backups themselves have their own records)."""
    cutoff = timezone.now() - dt.timedelta(days=days)
    removed, _ = TaskRun.objects.exclude(status=TaskRun.Status.RUNNING).filter(finished_at__lt=cutoff).delete()
    return removed


def scheduled_retention(*, task_id: str, policy_name: str | None = None) -> dict:
    """Every enabled policy (or the named one) and the pre-restore databases, as apply_retention does."""

    def action(task_run: TaskRun) -> dict:
        run = retention_run(policy_name=policy_name, wait_for_lock=True)  # a nightly backup may still run
        summary = {
            "policies": {
                outcome.plan.policy_name: {
                    "kept": len(outcome.plan.keep),
                    "deleted": outcome.deleted,
                    "failed": [pk for pk, _ in outcome.failed],
                    **({"error": outcome.error} if outcome.error else {}),
                }
                for outcome in run.outcomes
            },
            "pre_restore_dropped": [name for prune in run.pre_restore for name in prune.dropped],
            "wal_deleted": sum(map(len, run.wal.deleted.values())) if run.wal else 0,
            "task_runs_removed": task_runs_prune(),
        }
        if not run.ok:
            failures = [
                f"policy {outcome.plan.policy_name}: {outcome.error}" for outcome in run.outcomes if outcome.error
            ]
            failures += [f"backup #{pk}: {error}" for outcome in run.outcomes for pk, error in outcome.failed]
            failures += [f"database {name}: {error}" for prune in run.pre_restore for name, error in prune.failed]
            failures += [f"WAL {name}: {error}" for name, error in (run.wal.failed if run.wal else [])]
            raise RetentionError(f"Retention could not delete everything: {'; '.join(failures)}")
        return summary

    return task_run_execute(
        task_id=task_id, task_name="apply_retention", arguments={"policy": policy_name}, action=action
    )


def _verify_and_require_pass(task_run: TaskRun, backup_record: BackupRecord, *, restore_test: bool) -> dict:
    """Verifies one backup for a task run: the outcome is written on the record either way, and a
    failed verification fails the task run too (with the reasons), so the task list shows it."""
    task_run.backup_record = backup_record
    result = backup_verify(backup_record=backup_record, restore_test=restore_test)
    if not result.passed:
        problems = "; ".join(result.problems) or "checksum mismatch"
        raise VerificationError(f"Backup #{backup_record.pk} failed verification: {problems}")
    return {
        "backup_id": backup_record.pk,
        "verification_status": backup_record.verification_status,
        "restore_test": restore_test,
    }


def scheduled_verify_latest(
    *,
    task_id: str,
    database: str = DEFAULT_DB_ALIAS,
    restore_test: bool = True,
    kind: str = BackupRecord.Kind.FULL,
) -> dict:
    """Verifies the newest successful backup of `kind` (full by default) of `database`, with a restore
    test by default; the same selection as `verify_backup --latest`."""

    def action(task_run: TaskRun) -> dict:
        backup_record = backup_latest(database=database, kind=kind)
        return _verify_and_require_pass(task_run, backup_record, restore_test=restore_test)

    arguments = {"database": database, "restore_test": restore_test, "kind": kind}
    return task_run_execute(task_id=task_id, task_name="verify_latest_backup", arguments=arguments, action=action)


def requested_verify(*, task_id: str, backup_id: int, restore_test: bool = True, requested_by: str = "") -> dict:
    """Verifies one given backup (the admin's "Verify (restore test)", run by a worker): checksum
    and, by default, a restore into a scratch database. The outcome lands on the BackupRecord
    (verification status, time, details) and on this task's TaskRun."""

    def action(task_run: TaskRun) -> dict:
        backup_record = BackupRecord.objects.filter(pk=backup_id).first()
        if backup_record is None:
            raise BackupNotFound(f"Backup #{backup_id} does not exist (any more); nothing to verify.")
        return _verify_and_require_pass(task_run, backup_record, restore_test=restore_test)

    arguments = {"backup_id": backup_id, "restore_test": restore_test, "requested_by": requested_by}
    return task_run_execute(task_id=task_id, task_name="verify_backup", arguments=arguments, action=action)


def requested_restore(
    *, task_id: str, backup_id: int, tables: list[str] | None = None, requested_by: str = "", trigger: str = "api"
) -> dict:
    """Restores one backup for a task (a safety backup first), recorded on this task's TaskRun. The
    TaskRun lives in the operations database, so the restore it describes does not rewind it."""
    from dbops.services.backups.restore import backup_restore, restore_summary

    def action(task_run: TaskRun) -> dict:
        backup_record = BackupRecord.objects.filter(pk=backup_id).first()
        if backup_record is None:
            raise BackupNotFound(f"Backup #{backup_id} does not exist (any more); nothing restored.")
        task_run.backup_record = backup_record
        result = backup_restore(
            backup_record=backup_record,
            database=backup_record.database_alias,
            tables=tables,
            triggered_by=trigger,
            triggered_by_user=requested_by,
            wait=True,  # a nightly backup may hold the lock for a while
        )
        return {"backup_id": backup_record.pk, **restore_summary(result)}

    arguments = {"backup_id": backup_id, "tables": tables or [], "requested_by": requested_by}
    return task_run_execute(task_id=task_id, task_name="restore_backup", arguments=arguments, action=action)


def requested_table_restore(
    *,
    task_id: str,
    table: str,
    target_time: str,
    into: str = "",
    database: str = "default",
    requested_by: str = "",
    trigger: str = "api",
) -> dict:
    """One table as of a moment for a task (`pitr restore-table`'s work, confirmed in the admin), recorded
    on this task's TaskRun in the operations database."""
    from dbops.services.pitr.table_restore import pitr_table_restore  # PostgreSQL-only, loaded on demand

    def action(task_run: TaskRun) -> dict:
        result = pitr_table_restore(
            table=table,
            target_time=dt.datetime.fromisoformat(target_time),
            into=into,
            confirm=True,
            database=database,
            triggered_by=trigger,
            triggered_by_user=requested_by,
        )
        task_run.backup_record = BackupRecord.objects.filter(pk=result.base_backup_id).first()
        return {
            "table": result.table,
            "into": result.into,
            "rows": result.rows,
            "base_backup_id": result.base_backup_id,
            "replayed_to_lsn": result.replayed_to_lsn,
            "restore_record_id": result.restore_record_id,
            "warnings": result.warnings,
        }

    arguments = {
        "table": table,
        "target_time": target_time,
        "into": into,
        "database": database,
        "requested_by": requested_by,
        "trigger": trigger,
    }
    return task_run_execute(task_id=task_id, task_name="pitr_restore_table", arguments=arguments, action=action)


def scheduled_pitr_drill(*, task_id: str, target_age_minutes: int = 60) -> dict:
    """The weekly PITR drill (a replay to now minus `target_age_minutes` in a scratch server)."""
    from dbops.services.pitr.drill import pitr_drill_run  # PostgreSQL-only, loaded on demand

    def action(task_run: TaskRun) -> dict:
        drill = pitr_drill_run(target_age=dt.timedelta(minutes=target_age_minutes))
        if drill is None:
            return {"skipped": "no PITR base backup: PITR is not set up"}
        task_run.backup_record = drill.base_backup
        return {"drill": drill.pk, "rto_seconds": drill.recovery_seconds, "rpo_seconds": drill.rpo_seconds}

    arguments = {"target_age_minutes": target_age_minutes}
    return task_run_execute(task_id=task_id, task_name="pitr_drill", arguments=arguments, action=action)


def scheduled_upload_retry(*, task_id: str) -> dict:
    """Copies to S3 every succeeded backup whose upload failed; raises if any still fails."""

    def action(task_run: TaskRun) -> dict:
        pending = list(
            BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED, uploaded_to_s3=False)
            .exclude(upload_error="")
            .order_by("started_at")
        )
        if pending and not settings.S3_BACKUP_BUCKET:
            raise ConfigurationError(f"{len(pending)} backups wait for an S3 upload but S3_BACKUP_BUCKET is unset.")
        uploaded, failed = [], []
        for backup_record in pending:
            try:
                backup_upload_retry(backup_record=backup_record)
            except DbopsError as exc:
                failed.append(f"#{backup_record.pk}: {exc}")
            else:
                uploaded.append(backup_record.pk)
        if failed:
            raise UploadError(f"{len(failed)} of {len(pending)} uploads still failing: {'; '.join(failed)}")
        return {"uploaded": uploaded}

    return task_run_execute(task_id=task_id, task_name="retry_failed_uploads", arguments={}, action=action)


SNAPSHOT_PRUNE_DAYS = 30  # the default schedule's --older-than
SNAPSHOT_KEEP_LAST = 3  # and --keep-last


def scheduled_snapshot_prune(
    *, task_id: str, older_than_days: int = SNAPSHOT_PRUNE_DAYS, keep_last: int = SNAPSHOT_KEEP_LAST
) -> dict:
    """prune_snapshots on a schedule: rollback snapshots older than `older_than_days`, keeping the newest."""

    def action(task_run: TaskRun) -> dict:
        result = snapshot_prune(older_than_days=older_than_days, keep_last=keep_last)
        return {
            "pruned": [snapshot.id for snapshot in result.pruned],
            "skipped_in_rollback": result.skipped_in_rollback,
            "kept": result.kept,
            "freed_bytes": result.freed_bytes,
        }

    arguments = {"older_than_days": older_than_days, "keep_last": keep_last}
    return task_run_execute(task_id=task_id, task_name="prune_snapshots", arguments=arguments, action=action)


@dataclass(frozen=True)
class DefaultSchedule:
    name: str
    task: str  # a task of dbops.tasks
    cron: str  # "minute hour day-of-month month day-of-week", in settings.TIME_ZONE

    @property
    def kwargs(self) -> dict:
        return SCHEDULE_KWARGS.get(self.name, {})

    @property
    def description(self) -> str:
        return SCHEDULE_DESCRIPTIONS[self.name]


DEFAULT_SCHEDULES = (
    DefaultSchedule("dbops: nightly backup", "run_backup", "0 2 * * *"),
    DefaultSchedule("dbops: nightly retention", "apply_retention", "30 3 * * *"),
    DefaultSchedule("dbops: weekly restore test", "verify_latest_backup", "0 5 * * 0"),
    DefaultSchedule("dbops: retry failed uploads", "retry_failed_uploads", "15 * * * *"),
    DefaultSchedule("dbops: prune old snapshots", "prune_snapshots", "45 3 * * 1"),
    DefaultSchedule("dbops: weekly PITR drill", "pitr_drill", "0 6 * * 0"),
)
SCHEDULE_KWARGS = {  # written into each periodic task, where staff can edit them
    "dbops: nightly backup": {"database": DEFAULT_DB_ALIAS, "compression": "zstd"},
    "dbops: weekly restore test": {"database": DEFAULT_DB_ALIAS, "restore_test": True},
    "dbops: prune old snapshots": {"older_than_days": SNAPSHOT_PRUNE_DAYS, "keep_last": SNAPSHOT_KEEP_LAST},
}
SCHEDULE_DESCRIPTIONS = {
    "dbops: nightly backup": "Managed zstd backup of the default database (uploaded to S3 when a bucket is set).",
    "dbops: nightly retention": "Every enabled retention policy, then old <db>_pre_restore_<time> databases.",
    "dbops: weekly restore test": "Restores the newest full backup into a scratch database and checks it (Sundays).",
    "dbops: retry failed uploads": "Copies backups whose S3 upload failed (hourly).",
    "dbops: weekly PITR drill": "Replays the newest base backup and WAL to one hour ago in a scratch server and "
    "records the recovery time (RTO) and the gap to the target (RPO) (Sundays; nothing without base backups).",
    "dbops: prune old snapshots": f"Drops rollback snapshots older than {SNAPSHOT_PRUNE_DAYS} days, keeping the "
    f"{SNAPSHOT_KEEP_LAST} newest (Mondays; as prune_snapshots does).",
}
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")

DEFAULT_POLICY = {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}


@dataclass(frozen=True)
class ScheduleSetup:
    created: list[str]
    existing: list[str]


def schedules_setup() -> ScheduleSetup:
    """Creates the default periodic tasks and the `default` retention policy where missing. Existing
    ones (perhaps edited or disabled by staff in the admin) are left exactly as they are."""
    import json

    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    created, existing = [], []
    with transaction.atomic(using=operations_alias()):
        _, policy_created = RetentionPolicy.objects.get_or_create(name="default", defaults=DEFAULT_POLICY)
        (created if policy_created else existing).append("retention policy: default")
        for schedule in DEFAULT_SCHEDULES:
            if PeriodicTask.objects.filter(name=schedule.name).exists():
                existing.append(schedule.name)
                continue
            crontab, _ = CrontabSchedule.objects.get_or_create(
                **dict(zip(CRON_FIELDS, schedule.cron.split(), strict=True)), timezone=settings.TIME_ZONE
            )
            PeriodicTask.objects.create(
                name=schedule.name,
                task=f"dbops.tasks.{schedule.task}",
                crontab=crontab,
                kwargs=json.dumps(schedule.kwargs),
                description=schedule.description,
                enabled=True,
            )
            created.append(schedule.name)
    return ScheduleSetup(created=created, existing=existing)
