"""backup_advanced: a managed backup (catalog record + manifest), optionally compressed, encrypted, on S3."""

from __future__ import annotations

from dbops.artifacts.storage import s3_storage, s3_url
from dbops.exceptions import UploadError
from dbops.management.base import DATABASE_CHECKS_ONLY, DbopsCommand
from dbops.management.options import (
    add_backup_format_option,
    add_database_option,
    add_encrypt_option,
    add_quiet_option,
    add_wait_option,
    options_named,
)
from dbops.management.output import TtyByteProgress, human_bytes
from dbops.services.backups.create import backup_create


class Command(DbopsCommand):
    help = (
        "Takes a managed backup: streams the dump through compression (and encryption) into the backup "
        "storage, records it in the catalog with its SHA-256 and row counts, writes a manifest beside it, "
        "and optionally copies both to S3."
    )

    requires_system_checks = DATABASE_CHECKS_ONLY

    def add_arguments(self, parser):
        parser.add_argument(
            "--compress",
            dest="compression",
            nargs="?",
            const="zstd",
            default="zstd",
            metavar="zstd[:LEVEL]|gzip|none",
            help="Compression: zstd (default, multi-threaded; zstd:1 to zstd:22 pick the level, default 3), gzip or "
            "none. --compress alone means zstd.",
        )
        add_backup_format_option(parser, default="custom")
        parser.add_argument("--upload-s3", action="store_true", help="Also copy the backup to the S3 bucket.")
        parser.add_argument(
            "--no-local-copy",
            dest="local_copy",
            action="store_false",
            help="With --upload-s3: stream the backup straight into an S3 multipart upload (bounded memory, "
            "each part retried on its own, aborted on failure) and write no local artifact.",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=1,
            help="Dump with N parallel workers (a directory-format dump spooled in a work folder, packed into one "
            "tar artifact that restore_db --jobs N and verify_backup read; default 1, a custom archive).",
        )
        add_encrypt_option(parser)
        parser.add_argument("--tag", default="", help="A free label stored on the record (up to 64 characters).")
        add_wait_option(parser)
        add_database_option(parser, what="Database alias to back up")
        add_quiet_option(parser)

    def handle(self, *args, **options):
        with TtyByteProgress(self.stdout, label="backup", quiet=options["quiet"]) as progress:
            try:
                named = options_named(
                    options,
                    "database",
                    "compression",
                    "fmt",
                    "upload_s3",
                    "local_copy",
                    "encrypt",
                    "tag",
                    "wait",
                    "jobs",
                )
                backup_record = backup_create(
                    **named, progress=progress, upload_progress=progress.stage("upload to S3")
                )
            except UploadError as exc:
                progress.close()  # end the progress line before saying where the backup is
                if exc.backup_record is not None:
                    self.stdout.write(f"Backup #{exc.backup_record.pk} kept locally at {exc.backup_record.location}.")
                raise
        remote = s3_storage()
        url = s3_url(remote, key=backup_record.s3_key) if remote else f"s3://{backup_record.s3_key}"
        where = f" and {url}" if backup_record.uploaded_to_s3 else ""
        if not backup_record.location:
            where = f" straight to {url} (no local copy)"
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup #{backup_record.pk} succeeded: {backup_record.storage_name}{where}, "
                f"{human_bytes(backup_record.size_bytes)}, sha256 {backup_record.sha256[:16]}…, "
                f"{sum(backup_record.row_counts.values()):,} rows in {len(backup_record.row_counts)} tables, "
                f"{backup_record.duration_seconds:.1f}s."
            )
        )
