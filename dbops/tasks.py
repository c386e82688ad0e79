"""Celery tasks: parse plain arguments, call one scheduling service, retry transient failures.

Each task is idempotent per task id (dbops.services.ops.scheduling.task_run_execute), so it is safe to
acknowledge late: a delivery lost with its worker is redelivered and does the work once. The tasks are
shared: they run on the project's celery app (DBOPS["CELERY_APP"], else celery's current app), so the
project's celery settings decide the broker, or in-process (eager) runs."""

from __future__ import annotations

from celery import Task, shared_task
from celery.exceptions import Retry
from django.db import InterfaceError, OperationalError

from dbops.conf import celery_app
from dbops.exceptions import BackupLockedError
from dbops.services.ops import scheduling
from dbops.services.ops.notifications import failure_notify

celery_app()  # the project's app exists (and is current) before the shared tasks below bind to it

# Worth retrying later: a lost database connection, or another backup/restore holding the lock.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError, BackupLockedError)


class DbopsTask(Task):
    """Late acknowledgement, bounded retries with exponential backoff for transient errors, and a
    failure notification once the task has finally failed (not on each retry)."""

    acks_late = True
    autoretry_for = TRANSIENT_ERRORS
    max_retries = 3
    retry_backoff = 30
    retry_backoff_max = 15 * 60
    retry_jitter = True

    def __call__(self, *args, **kwargs):
        # Here rather than in on_failure, which eager (in-process) runs skip when they propagate errors.
        try:
            return super().__call__(*args, **kwargs)
        except Retry:
            raise
        except BaseException as exc:
            failure_notify(
                subject=f"dbops task {self.name} failed",
                body=f"Task {self.name} (id {self.request.id}, arguments {kwargs or args}) failed "
                f"after {self.request.retries} retries: {type(exc).__name__}: {exc}",
            )
            raise


@shared_task(bind=True, base=DbopsTask, soft_time_limit=2 * 3600, time_limit=2 * 3600 + 300)
def run_backup(self, **options) -> dict:
    """A managed backup; `options` are scheduled_backup's (database, compression, fmt, upload_s3, local_copy,
    encrypt, tag, triggered_by, triggered_by_user), as a periodic task's kwargs name them."""
    return scheduling.scheduled_backup(task_id=self.request.id, **options)


@shared_task(bind=True, base=DbopsTask, soft_time_limit=30 * 60, time_limit=35 * 60)
def apply_retention(self, policy: str | None = None) -> dict:
    return scheduling.scheduled_retention(task_id=self.request.id, policy_name=policy)


@shared_task(bind=True, base=DbopsTask, soft_time_limit=2 * 3600, time_limit=2 * 3600 + 300)
def verify_latest_backup(self, database: str = "default", restore_test: bool = True, kind: str = "full") -> dict:
    return scheduling.scheduled_verify_latest(
        task_id=self.request.id, database=database, restore_test=restore_test, kind=kind
    )


@shared_task(bind=True, base=DbopsTask, soft_time_limit=2 * 3600, time_limit=2 * 3600 + 300)
def verify_backup(self, backup_id: int, restore_test: bool = True, requested_by: str = "") -> dict:
    return scheduling.requested_verify(
        task_id=self.request.id, backup_id=backup_id, restore_test=restore_test, requested_by=requested_by
    )


# Not retried automatically: the operator who asked for a restore decides whether to ask again.
@shared_task(bind=True, base=DbopsTask, autoretry_for=(), soft_time_limit=4 * 3600, time_limit=4 * 3600 + 300)
def restore_backup(
    self, backup_id: int, tables: list[str] | None = None, requested_by: str = "", trigger: str = "api"
) -> dict:
    return scheduling.requested_restore(
        task_id=self.request.id, backup_id=backup_id, tables=tables, requested_by=requested_by, trigger=trigger
    )


# Not retried automatically, as a restore: the operator decides whether to ask again.
@shared_task(bind=True, base=DbopsTask, autoretry_for=(), soft_time_limit=4 * 3600, time_limit=4 * 3600 + 300)
def pitr_restore_table(
    self,
    table: str,
    target_time: str,
    into: str = "",
    database: str = "default",
    requested_by: str = "",
    trigger: str = "api",
) -> dict:
    return scheduling.requested_table_restore(
        task_id=self.request.id,
        table=table,
        target_time=target_time,
        into=into,
        database=database,
        requested_by=requested_by,
        trigger=trigger,
    )


@shared_task(bind=True, base=DbopsTask, soft_time_limit=2 * 3600, time_limit=2 * 3600 + 300)
def pitr_drill(self, target_age_minutes: int = 60) -> dict:
    return scheduling.scheduled_pitr_drill(task_id=self.request.id, target_age_minutes=target_age_minutes)


@shared_task(bind=True, base=DbopsTask, soft_time_limit=60 * 60, time_limit=65 * 60)
def retry_failed_uploads(self) -> dict:
    return scheduling.scheduled_upload_retry(task_id=self.request.id)


@shared_task(bind=True, base=DbopsTask, soft_time_limit=30 * 60, time_limit=35 * 60)
def prune_snapshots(
    self, older_than_days: int = scheduling.SNAPSHOT_PRUNE_DAYS, keep_last: int = scheduling.SNAPSHOT_KEEP_LAST
) -> dict:
    return scheduling.scheduled_snapshot_prune(
        task_id=self.request.id, older_than_days=older_than_days, keep_last=keep_last
    )
