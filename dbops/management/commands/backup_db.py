"""backup_db: one backup of the database into a file you name (plain SQL by default)."""

from __future__ import annotations

from pathlib import Path

from django.core.checks import Tags
from django.db import DEFAULT_DB_ALIAS

from dbops.exceptions import OutputExists
from dbops.management.base import DbopsCommand
from dbops.management.output import TtyByteProgress, human_bytes
from dbops.services.backups.create import backup_export


class Command(DbopsCommand):
    help = (
        "Writes a backup of the database to --output (plain SQL by default; .gz or .zst in the name "
        "compresses), and its SHA-256 beside it in OUTPUT.sha256 (sha256sum -c reads it; restore_db "
        "checks it). Both appear only once complete. Not recorded in the catalog: use "
        "backup_advanced for managed backups."
    )

    # Only the database-tagged checks (client tools present): not held up (~0.1 s) or blocked by checks
    # of unrelated apps. `manage.py check` runs them all.
    requires_system_checks = [Tags.database]

    error_hints = {OutputExists: "Pass --overwrite to replace it."}

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", required=True, help="File to write, e.g. backup.sql or backup.sql.zst.")
        parser.add_argument(
            "--format",
            dest="fmt",
            default="plain",
            choices=["plain", "custom"],
            help="plain SQL (default) or custom (PostgreSQL custom archive; the database file on SQLite).",
        )
        parser.add_argument(
            "--compress",
            default=None,
            choices=["zstd", "gzip", "none"],
            help="Compression; default from the file name (.zst, .gz, otherwise none).",
        )
        parser.add_argument(
            "--encrypt", action="store_true", help="Encrypt with the newest key of BACKUP_ENCRYPTION_KEYS."
        )
        parser.add_argument(
            "--overwrite", action="store_true", help="Replace --output (and its .sha256) if it already exists."
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help='Database alias (default "default").')
        parser.add_argument("--quiet", action="store_true", help="No progress, only the result line.")

    def handle(self, *args, **options):
        progress = TtyByteProgress(self.stdout, label="backup", quiet=options["quiet"])
        try:
            result = backup_export(
                output=Path(options["output"]),
                database=options["database"],
                fmt=options["fmt"],
                compression=options["compress"],
                encrypt=options["encrypt"],
                overwrite=options["overwrite"],
                progress=progress,
            )
        finally:
            progress.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {result.path} ({result.fmt}, {result.compression}, {human_bytes(result.size_bytes)}, "
                f"sha256 {result.sha256} in {result.sidecar.name}) with {sum(result.row_counts.values()):,} rows "
                f"in {result.seconds:.1f}s."
            )
        )
