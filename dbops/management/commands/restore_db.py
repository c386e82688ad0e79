"""restore_db: restore the database from a backup file or a managed backup (refuses without --confirm)."""

from __future__ import annotations

from django.core.management.base import CommandError

from dbops.exceptions import ChecksumUnavailable
from dbops.management.base import DATABASE_CHECKS_ONLY, DbopsCommand
from dbops.management.options import add_database_option, add_quiet_option, add_wait_option
from dbops.management.output import TtyByteProgress
from dbops.services.backups.restore import backup_for_id, backup_restore, restore_plan


class Command(DbopsCommand):
    help = (
        "Restores the database from --input FILE or --backup-id ID. The checksum is verified (a file "
        "against FILE.sha256; a damaged local copy of a managed backup gives way to its S3 copy) and the "
        "backup decoded before anything is touched; a safety backup is taken first; on PostgreSQL a full "
        "restore goes into a fresh database swapped in by rename. Without --confirm it only says what it "
        "would do."
    )

    requires_system_checks = DATABASE_CHECKS_ONLY

    error_hints = {ChecksumUnavailable: "Pass --no-verify to restore it anyway."}

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--input", "-i", help="A backup file (from backup_db or a backup artifact).")
        source.add_argument("--backup-id", help="Id of a managed backup (see list_backups); local or S3.")
        parser.add_argument("--confirm", action="store_true", help="Really restore (destructive).")
        parser.add_argument(
            "--no-verify",
            action="store_true",
            help="With --input: restore a file without checking it against its .sha256 checksum file "
            "(needed when it has none).",
        )
        parser.add_argument(
            "--tables", default=None, help="Comma-separated tables to restore (their rows only); default: everything."
        )
        parser.add_argument("--jobs", type=int, default=1, help="Parallel restore jobs (custom format only).")
        parser.add_argument(
            "--no-safety-backup", action="store_true", help="Skip the automatic backup taken before restoring."
        )
        add_wait_option(parser)
        add_database_option(parser, what="Database alias to restore")
        add_quiet_option(parser)

    def handle(self, *args, **options):
        tables = options["tables"].split(",") if options["tables"] is not None else None
        backup_record = backup_for_id(options["backup_id"]) if options["backup_id"] is not None else None
        common = {
            "backup_record": backup_record,
            "input_path": options["input"],
            "database": options["database"],
            "tables": tables,
            "jobs": options["jobs"],
            "safety_backup": not options["no_safety_backup"],
            "verify": not options["no_verify"],
        }
        plan = restore_plan(**common)
        if not options["confirm"]:
            raise CommandError(f"{plan.describe()}\nNothing was done: add --confirm to restore.")
        # The long part before the database takes over is checking and decoding the artifact.
        progress_bar = TtyByteProgress(
            self.stdout, label="restore: decoding", total=plan.artifact_bytes, quiet=options["quiet"]
        )
        with progress_bar as progress:
            result = backup_restore(**common, wait=options["wait"], progress=progress)
        for note in result.notes:
            self.stdout.write(note)
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        if result.catalog_behind:
            self.stderr.write("Run `list_backups --sync` to bring the newer backups back into the catalog.")
        if result.safety_backup is not None:
            self.stdout.write(
                f"Safety backup #{result.safety_backup.pk} taken first: {result.safety_backup.storage_name}"
            )
        if result.previous_database:
            self.stdout.write(f"The previous database is kept as {result.previous_database}.")
        if result.sync is not None and not options["quiet"]:
            sync = result.sync
            self.stdout.write(
                f"Catalog re-synced from storage: {len(sync.created)} added, {len(sync.updated)} updated, "
                f"{len(sync.missing)} missing."
            )
            for message in result.sync.messages:
                self.stdout.write(f"  {message}")
        what = f"table(s) {', '.join(result.tables)}" if result.tables else f"database {result.database_name}"
        self.stdout.write(self.style.SUCCESS(f"Restored {what} from {result.source} in {result.seconds:.1f}s."))
