"""PITR facts about a base backup that the shared backup catalog has no columns for: which cluster it
belongs to and where in the WAL it starts (what retention must keep and restore must replay from)."""

from __future__ import annotations

from django.db import models

from dbops.models.backups import BackupRecord


class PitrBaseBackup(models.Model):
    backup = models.OneToOneField(BackupRecord, on_delete=models.CASCADE, related_name="pitr")
    cluster_id = models.CharField(max_length=20, help_text="The server's system identifier")
    timeline = models.PositiveIntegerField()
    start_lsn = models.CharField(max_length=20)
    end_lsn = models.CharField(max_length=20)
    start_wal = models.CharField(max_length=24, help_text="First WAL segment a restore from this backup needs")
    end_wal = models.CharField(max_length=24)
    wal_segment_size = models.PositiveIntegerField()
    storage = models.CharField(max_length=8, help_text="local or s3: where the artifact and its WAL are")

    class Meta:
        indexes = [models.Index(fields=["cluster_id", "start_wal"], name="pitr_cluster_start_idx")]

    def __str__(self) -> str:
        return f"base backup #{self.backup_id} of cluster {self.cluster_id} from {self.start_wal}"


class PitrDrill(models.Model):
    """One PITR drill: the newest base backup plus WAL replayed in a scratch server to "now minus an
    hour", with how long that took (RTO) and how far the last replayed commit is from the target (RPO)."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    target_time = models.DateTimeField()
    base_backup = models.ForeignKey(BackupRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    recovery_seconds = models.FloatField(null=True, blank=True, help_text="RTO: unpack and replay to the target")
    rpo_seconds = models.FloatField(null=True, blank=True, help_text="RPO: target minus the last replayed commit")
    replayed_to_lsn = models.CharField(max_length=20, blank=True)
    wal_restored_from_archive = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"PITR drill {self.started_at:%Y-%m-%d %H:%M} {self.status}"
