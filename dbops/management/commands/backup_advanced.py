"""backup_advanced: a managed backup (catalog record + manifest), optionally compressed, encrypted, on S3."""

from __future__ import annotations

from django.core.checks import Tags
from django.db import DEFAULT_DB_ALIAS

from dbops.exceptions import UploadError
from dbops.management.base import DbopsCommand
from dbops.management.output import TtyByteProgress, human_bytes
from dbops.services.backups.create import backup_create


class Command(DbopsCommand):
    help = (
        "Takes a managed backup: streams the dump through compression (and encryption) into the backup "
        "storage, records it in the catalog with its SHA-256 and row counts, writes a manifest beside it, "
        "and optionally copies both to S3."
    )

    # Only the database-tagged checks (client tools present): not held up (~0.1 s) or blocked by checks
    # of unrelated apps. `manage.py check` runs them all.
    requires_system_checks = [Tags.database]

    def add_arguments(self, parser):
        parser.add_argument(
            "--compress",
            nargs="?",
            const="zstd",
            default="zstd",
            choices=["zstd", "gzip", "none"],
            help="Compression: zstd (default, multi-threaded), gzip or none. --compress alone means zstd.",
        )
        parser.add_argument(
            "--format",
            dest="fmt",
            default="custom",
            choices=["custom", "plain"],
            help="custom (PostgreSQL custom archive, restores in parallel; the database file on SQLite) or plain SQL.",
        )
        parser.add_argument("--upload-s3", action="store_true", help="Also copy the backup to the S3 bucket.")
        parser.add_argument(
            "--encrypt",
            action="store_true",
            help="Encrypt (AES-256-GCM, streaming) with the newest key of BACKUP_ENCRYPTION_KEYS.",
        )
        parser.add_argument("--tag", default="", help="A free label stored on the record (up to 64 characters).")
        parser.add_argument(
            "--wait", action="store_true", help="Wait for a running backup/restore of the database instead of refusing."
        )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help='Database alias to back up (default "default").'
        )
        parser.add_argument("--quiet", action="store_true", help="No progress, only the result line.")

    def handle(self, *args, **options):
        progress = TtyByteProgress(self.stdout, label="backup", quiet=options["quiet"])
        try:
            backup_record = backup_create(
                database=options["database"],
                compression=options["compress"],
                fmt=options["fmt"],
                upload_s3=options["upload_s3"],
                encrypt=options["encrypt"],
                tag=options["tag"],
                wait=options["wait"],
                progress=progress,
            )
        except UploadError as exc:
            progress.close()
            if exc.backup_record is not None:
                self.stdout.write(f"Backup #{exc.backup_record.pk} kept locally at {exc.backup_record.location}.")
            raise
        finally:
            progress.close()
        where = f" and s3://{backup_record.s3_key}" if backup_record.uploaded_to_s3 else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup #{backup_record.pk} succeeded: {backup_record.storage_name}{where}, "
                f"{human_bytes(backup_record.size_bytes)}, sha256 {backup_record.sha256[:16]}…, "
                f"{sum(backup_record.row_counts.values()):,} rows in {len(backup_record.row_counts)} tables, "
                f"{backup_record.duration_seconds:.1f}s."
            )
        )
