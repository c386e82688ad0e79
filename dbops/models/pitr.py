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
