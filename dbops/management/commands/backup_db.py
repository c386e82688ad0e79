"""backup_db: one backup of the database into a file you name (plain SQL by default)."""

from __future__ import annotations

from pathlib import Path

from dbops.exceptions import OutputExists
from dbops.management.base import DATABASE_CHECKS_ONLY, DbopsCommand
from dbops.management.options import (
    add_backup_format_option,
    add_database_option,
    add_encrypt_option,
    add_quiet_option,
    options_named,
)
from dbops.management.output import TtyByteProgress, human_bytes
from dbops.services.backups.create import backup_export


class Command(DbopsCommand):
    help = (
        "Writes a backup of the database to --output (plain SQL by default; .gz or .zst in the name "
        "compresses), and its SHA-256 beside it in OUTPUT.sha256 (sha256sum -c reads it; restore_db "
        "checks it). Both appear only once complete. Not recorded in the catalog: use "
        "backup_advanced for managed backups."
    )

    requires_system_checks = DATABASE_CHECKS_ONLY

    error_hints = {OutputExists: "Pass --overwrite to replace it."}

    def add_arguments(self, parser):
        parser.add_argument(
            "--output", "-o", type=Path, required=True, help="File to write, e.g. backup.sql or backup.sql.zst."
        )
        add_backup_format_option(parser, default="plain")
        parser.add_argument(
            "--compress",
            dest="compression",
            default=None,
            choices=["zstd", "gzip", "none"],
            help="Compression; default from the file name (.zst, .gz, otherwise none).",
        )
        add_encrypt_option(parser)
        parser.add_argument(
            "--overwrite", action="store_true", help="Replace --output (and its .sha256) if it already exists."
        )
        add_database_option(parser)
        add_quiet_option(parser)

    def handle(self, *args, **options):
        with TtyByteProgress(self.stdout, label="backup", quiet=options["quiet"]) as progress:
            named = options_named(options, "output", "database", "fmt", "compression", "encrypt", "overwrite")
            result = backup_export(**named, progress=progress)
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {result.path} ({result.fmt}, {result.compression}, {human_bytes(result.size_bytes)}, "
                f"sha256 {result.sha256} in {result.sidecar.name}) with {sum(result.row_counts.values()):,} rows "
                f"in {result.seconds:.1f}s."
            )
        )
