"""verify_backup: recompute a backup's checksum from storage; --restore-test restores it into a scratch
database and compares the tables and row counts recorded at backup time."""

from __future__ import annotations

from django.core.management.base import CommandError

from dbops.management.base import DATABASE_CHECKS_ONLY, DbopsCommand
from dbops.management.options import add_quiet_option
from dbops.management.output import TtyByteProgress
from dbops.models import BackupRecord
from dbops.services.backups.restore import backup_for_id
from dbops.services.backups.verify import backup_latest, backup_verify


class Command(DbopsCommand):
    help = (
        "Verifies a backup: its SHA-256 from storage (local, else S3); with --restore-test also restores it "
        "into a scratch database (dropped after) and checks tables and row counts. A PITR base backup is also "
        "checked against its backup manifest, and its restore test replays its WAL in a scratch server. The result is "
        "recorded."
    )

    requires_system_checks = DATABASE_CHECKS_ONLY

    def add_arguments(self, parser):
        parser.add_argument("backup_id", nargs="?", help="Id of the backup (see list_backups).")
        parser.add_argument(
            "--latest", action="store_true", help="Verify the newest succeeded backup of --kind (full by default)."
        )
        parser.add_argument(
            "--kind",
            choices=BackupRecord.Kind.values,
            default=BackupRecord.Kind.FULL,
            help="With --latest: which kind of backup (full, safety, or base for a PITR base backup).",
        )
        parser.add_argument(
            "--restore-test",
            action="store_true",
            help="Also restore into a scratch database and compare row counts (a PITR base backup: replay its WAL "
            "in a scratch server until consistent).",
        )
        parser.add_argument("--jobs", type=int, default=1, help="Parallel restore jobs for --restore-test.")
        add_quiet_option(parser)

    def handle(self, *args, **options):
        if bool(options["backup_id"]) == bool(options["latest"]):
            raise CommandError("Give a backup id or --latest (one of them).")
        if options["latest"]:
            backup_record = backup_latest(kind=options["kind"])
        else:
            backup_record = backup_for_id(options["backup_id"])
        # The long part of a restore test before the scratch database takes over is decoding the artifact.
        progress_bar = TtyByteProgress(
            self.stdout, label="verify: decoding", total=backup_record.size_bytes, quiet=options["quiet"]
        )
        with progress_bar as progress:
            result = backup_verify(
                backup_record=backup_record,
                restore_test=options["restore_test"],
                jobs=max(1, options["jobs"]),
                progress=progress,
            )
        checks = " + ".join(result.checks)
        copy = " of the S3 copy" if result.source == "s3" else ""
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        if result.passed:
            self.stdout.write(self.style.SUCCESS(f"Backup #{backup_record.pk} verified: {checks}{copy} passed."))
            return
        if result.key_unavailable:
            checksum = "checksum ok, " if result.checksum_ok else ""
            raise CommandError(f"Backup #{backup_record.pk}: {checksum}{result.problems[0]}")
        for problem in result.problems:
            self.stderr.write(f"  {problem}")
        raise CommandError(f"Backup #{backup_record.pk} FAILED verification ({checks}): {result.problems[0]}")
