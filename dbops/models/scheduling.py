"""One row per scheduled-task delivery (keyed by celery task id): makes the tasks idempotent across
redeliveries and retries, and keeps each run's outcome for the admin."""

from __future__ import annotations

from django.db import models

from dbops.models.backups import BackupRecord


class TaskRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    task_id = models.CharField(max_length=255, unique=True)
    task_name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    arguments = models.JSONField(default=dict, blank=True)
    backup_record = models.ForeignKey(
        BackupRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="task_runs"
    )
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["task_name", "-started_at"], name="taskrun_name_started_idx")]

    def __str__(self) -> str:
        return f"{self.task_name} {self.status} {self.started_at:%Y-%m-%d %H:%M}"
