"""The backup catalog. Each row mirrors a manifest stored beside its artifact, so the catalog can be
rebuilt from storage after a restore (`list_backups --sync`)."""

from __future__ import annotations

from django.db import models

from dbops.models.runs import Run


class BackupRecord(models.Model):
    class Kind(models.TextChoices):
        FULL = "full", "Full backup"
        SAFETY = "safety", "Safety backup (taken before a restore)"
        BASE = "base", "PITR base backup"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        # Only our own delete (backup_delete) sets `deleted`; a sync that finds the artifact in no
        # storage sets `missing`, and `succeeded` again when it reappears.
        DELETED = "deleted"
        MISSING = "missing", "missing (artifact found in no storage at the last look)"

    class Presence(models.TextChoices):
        NONE = "", "not stored there"
        PRESENT = "present"
        MISSING = "missing"
        DAMAGED = "damaged", "damaged (checksum mismatch)"

    class Format(models.TextChoices):
        CUSTOM = "custom", "PostgreSQL custom archive"
        PLAIN = "plain", "plain SQL"
        DIRECTORY = "directory", "PostgreSQL directory archive (parallel dump, packed as tar)"
        SQLITE = "sqlite", "SQLite database file"
        TAR = "tar", "PostgreSQL base backup (tar)"

    class Compression(models.TextChoices):
        NONE = "none"
        GZIP = "gzip"
        ZSTD = "zstd"

    class Trigger(models.TextChoices):
        CLI = "cli"
        ADMIN = "admin"
        SCHEDULE = "schedule"
        RESTORE = "restore", "before a restore"
        API = "api"

    class VerificationStatus(models.TextChoices):
        NEVER = "never"
        PASSED = "passed"
        FAILED = "failed"
        # Encrypted with a key that is not in the key ring: nothing is wrong with the backup.
        KEY_UNAVAILABLE = "key_unavailable", "key unavailable"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.FULL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # Liveness of a running backup: a RUNNING row whose heartbeat is old belongs to a killed run.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)

    engine = models.CharField(max_length=32)  # "postgresql" | "sqlite"
    database_alias = models.CharField(max_length=64, default="default")
    database_name = models.CharField(max_length=255)
    format = models.CharField(max_length=16, choices=Format.choices)
    compression = models.CharField(max_length=8, choices=Compression.choices, default=Compression.NONE)
    encrypted = models.BooleanField(default=False)
    encryption_key_id = models.CharField(
        max_length=32, blank=True, help_text="Id of the key it is encrypted with (a fingerprint, never the key)"
    )
    tag = models.CharField(max_length=64, blank=True)

    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    storage_name = models.CharField(max_length=512, blank=True, help_text="Name of the artifact in the backups storage")
    location = models.CharField(max_length=1024, blank=True, help_text="Where the local artifact lives")
    uploaded_to_s3 = models.BooleanField(default=False)
    # Where the artifact was found the last time anything looked (backup, upload, sync, verify, restore).
    local_presence = models.CharField(max_length=8, choices=Presence.choices, blank=True, default=Presence.NONE)
    s3_presence = models.CharField(max_length=8, choices=Presence.choices, blank=True, default=Presence.NONE)
    s3_key = models.CharField(max_length=1024, blank=True)
    # The multipart upload of a straight-to-S3 backup while it runs; kept on failure when S3 could not
    # be told to abort it, so the next backup of the database aborts it (no orphan parts billing).
    s3_upload_id = models.CharField(max_length=1024, blank=True)
    # Storage alias -> "verified" or why its copy failed (DBOPS["COPY_TARGETS"]).
    copies = models.JSONField(default=dict, blank=True)
    pinned = models.BooleanField(
        default=False, help_text="A pinned backup is never deleted, by retention or anyone, until it is unpinned."
    )
    upload_error = models.TextField(blank=True)
    error = models.TextField(blank=True)

    triggered_by = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.CLI)
    triggered_by_user = models.CharField(max_length=150, blank=True)

    server_version = models.CharField(max_length=64, blank=True)
    tool_version = models.CharField(max_length=128, blank=True)
    migration_state = models.JSONField(default=dict, blank=True)
    row_counts = models.JSONField(default=dict, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)

    verification_status = models.CharField(
        max_length=16, choices=VerificationStatus.choices, default=VerificationStatus.NEVER
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_details = models.JSONField(default=dict, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-started_at"], name="backup_status_started_idx"),
            models.Index(fields=["database_alias", "kind", "-started_at"], name="backup_db_kind_started_idx"),
        ]
        permissions = [("restore_backup", "Can restore the database from a backup")]

    def __str__(self) -> str:
        return f"backup #{self.pk} {self.kind} {self.status} {self.started_at:%Y-%m-%d %H:%M}"

    def places(self) -> str:
        """local / s3 / local+s3 for the copies present; `!` marks a copy found damaged, `?` a missing one."""
        marks = {self.Presence.PRESENT: "", self.Presence.DAMAGED: "!", self.Presence.MISSING: "?"}
        parts = [
            f"{place}{marks[presence]}"
            for place, presence in (("local", self.local_presence), ("s3", self.s3_presence))
            if presence in marks
        ]
        return "+".join(parts) or "-"


class RestoreRecord(Run):
    """One restore (backup_restore): created running before anything is touched, finished either way.

    When the operations state lives in the database being restored, backup_restore carries these rows
    across the restore, so the history is not rewound to the backup's time."""

    backup = models.ForeignKey(
        BackupRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="restores", db_index=False
    )
    input_path = models.CharField(max_length=1024, blank=True, help_text="The backup file, for a file restore")
    source = models.CharField(max_length=1024, help_text="What was restored, as the operator saw it")
    database_alias = models.CharField(max_length=64)
    database_name = models.CharField(max_length=255)
    tables = models.JSONField(default=list, blank=True, help_text="Only these tables; empty: the whole database")
    safety_backup = models.ForeignKey(
        BackupRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    previous_database = models.CharField(max_length=255, blank=True, help_text="Where the replaced database is kept")
    triggered_by = models.CharField(
        max_length=16, choices=BackupRecord.Trigger.choices, default=BackupRecord.Trigger.CLI
    )
    triggered_by_user = models.CharField(max_length=150, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    # Who runs it: the next dbops command fails a running record whose process on this host is gone.
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)

    class Meta(Run.Meta):
        indexes = [models.Index(fields=["backup", "-started_at"], name="restore_backup_started_idx")]

    def __str__(self) -> str:
        return f"restore #{self.pk} {self.status} {self.source}"
