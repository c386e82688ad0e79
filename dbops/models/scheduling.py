"""One row per scheduled-task delivery (keyed by celery task id): makes the tasks idempotent across
redeliveries and retries, and keeps each run's outcome for the admin."""

from __future__ import annotations

from django.db import models

from dbops.models.backups import BackupRecord
from dbops.models.runs import Run


class TaskRun(Run):
    task_id = models.CharField(max_length=255, unique=True)
    task_name = models.CharField(max_length=200)
    attempts = models.PositiveIntegerField(default=0)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    arguments = models.JSONField(default=dict, blank=True)
    backup_record = models.ForeignKey(
        BackupRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="task_runs"
    )
    result = models.JSONField(default=dict, blank=True)

    class Meta(Run.Meta):
        indexes = [models.Index(fields=["task_name", "-started_at"], name="taskrun_name_started_idx")]

    def __str__(self) -> str:
        return f"{self.task_name} {self.status} {self.started_at:%Y-%m-%d %H:%M}"
