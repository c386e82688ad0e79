"""restore_wal: PostgreSQL's restore_command (`restore_wal %f %p --cluster-id ID`)."""

from __future__ import annotations

from django.core.management.base import CommandError

from dbops.management.base import DbopsCommand
from dbops.services.pitr.wal_archive import cluster_id_from_data_dir, wal_restore


class Command(DbopsCommand):
    help = (
        "Writes one archived WAL file to PATH after checking its SHA-256. Meant as the restore_command that "
        "`pitr restore` configures; exits non-zero when the file is not archived (normal at the end of recovery)."
    )
    requires_system_checks = []
    recovers_leftovers = False  # run by the server in recovery: touch no database

    def add_arguments(self, parser):
        parser.add_argument("name", help="WAL file name (%%f).")
        parser.add_argument("path", help="Where to write it (%%p).")
        parser.add_argument(
            "--cluster-id",
            help="The archive's system identifier; default: read from global/pg_control in the current directory.",
        )
        parser.add_argument("--storage", choices=["local", "s3"], help="Where to read (default: PITR_STORAGE).")

    def handle(self, *args, **options):
        try:
            cluster_id = options["cluster_id"] or cluster_id_from_data_dir(".")
            size = wal_restore(
                name=options["name"], destination=options["path"], cluster_id=cluster_id, storage=options["storage"]
            )
        except OSError as exc:  # storage unreachable or not writable: PostgreSQL keeps the file and retries
            raise CommandError(f"Cannot restore {options['name']}: {exc}") from exc
        self.stdout.write(f"{options['name']} restored ({size:,} bytes, checksum verified).")
