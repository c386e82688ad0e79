"""Data migration: the status row of every export/import run and the rollback snapshots."""

from __future__ import annotations

import os
import socket
import time

from django.db import models
from django.utils import timezone

from dbops.models.runs import Run, RunStatus, owner_process_gone

INTERRUPTED = "interrupted: the process running it died (found by a later export or import)"


class DataTransferRun(Run):
    """One export_data or import_data run (dry runs record nothing: they change nothing)."""

    class Kind(models.TextChoices):
        EXPORT = "export"
        IMPORT = "import"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    format = models.CharField(max_length=8)
    path = models.CharField(max_length=1024)
    entities = models.JSONField(default=list, blank=True)
    mode = models.CharField(max_length=8, blank=True, help_text="insert or upsert (imports)")
    options = models.JSONField(default=dict, blank=True, help_text="anonymize, transforms, filters")
    row_counts = models.JSONField(default=dict, blank=True)
    created_counts = models.JSONField(default=dict, blank=True)
    updated_counts = models.JSONField(default=dict, blank=True)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)

    class Meta(Run.Meta):
        indexes = [models.Index(fields=["kind", "-started_at"], name="transfer_kind_started_idx")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.status} {self.path}"

    @classmethod
    def begin(cls, **fields) -> DataTransferRun:
        """A new running row claimed by this process. Rows of this host whose process is gone (SIGKILL,
        a power cut) are marked failed first, so no run stays 'running' forever."""
        cls.interrupted_mark()
        return cls.objects.create(hostname=socket.gethostname(), pid=os.getpid(), **fields)

    @classmethod
    def interrupted_mark(cls) -> list[int]:
        running = cls.objects.filter(status=RunStatus.RUNNING, hostname=socket.gethostname()).exclude(pid=None)
        gone = [
            run.pk
            for run in running.only("pk", "hostname", "pid")
            if owner_process_gone(hostname=run.hostname, pid=run.pid)
        ]
        if gone:
            cls.objects.filter(pk__in=gone, status=RunStatus.RUNNING).update(
                status=RunStatus.FAILED, finished_at=timezone.now(), error=INTERRUPTED
            )
        return gone

    def finish(self, *, status: str, started: float, error: str = "", **values) -> None:
        """Records the outcome; `started` is the run's time.perf_counter() start."""
        self.status = status
        self.error = error[:10_000]
        self.finished_at = timezone.now()
        self.duration_seconds = time.perf_counter() - started
        for name, value in values.items():
            setattr(self, name, value)
        self.save()


class Snapshot(models.Model):
    """A copy of some tables taken before an import, kept in the database until deleted.

    `copies` maps each table to the table holding its copy; `checksums` are sha256 of each table's
    rows in primary-key order, so a rollback can prove it restored the exact state.
    """

    class Status(models.TextChoices):
        AVAILABLE = "available"
        ROLLED_BACK = "rolled_back", "rolled back"

    id = models.CharField(max_length=64, primary_key=True)
    created_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.AVAILABLE)
    database_alias = models.CharField(max_length=64, default="default")
    tables = models.JSONField(default=list)
    copies = models.JSONField(default=dict)
    row_counts = models.JSONField(default=dict)
    checksums = models.JSONField(default=dict)
    # Each table's checksum right after the import this snapshot was taken for: a rollback that finds
    # another one knows rows were written since, which it would otherwise discard silently.
    checksums_after_import = models.JSONField(default=dict, blank=True)
    sequences = models.JSONField(default=dict, help_text="table -> [sequence, last_value, is_called] (PostgreSQL)")
    checksum = models.CharField(max_length=64, help_text="sha256 over the per-table checksums")
    size_bytes = models.PositiveBigIntegerField(default=0)
    reason = models.CharField(max_length=255, blank=True)
    import_run = models.ForeignKey(
        DataTransferRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots"
    )
    rolled_back_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.id
