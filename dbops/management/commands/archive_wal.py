"""archive_wal: PostgreSQL's archive_command (`archive_wal %p %f`)."""

from __future__ import annotations

from django.core.management.base import CommandError

from dbops.management.base import DbopsCommand
from dbops.services.pitr.wal_archive import cluster_id_from_data_dir, wal_archive


class Command(DbopsCommand):
    help = (
        "Stores one WAL file, zstd-compressed and SHA-256 checksummed, in the PITR storage (local BACKUP_DIR or "
        "S3). Meant as the server's archive_command: archive_wal %p %f. Archiving identical bytes again succeeds; "
        "different bytes under an archived name fail and change nothing."
    )
    requires_system_checks = []  # runs once per WAL segment: start fast, touch no database
    recovers_leftovers = False

    def add_arguments(self, parser):
        parser.add_argument("path", help="Path of the WAL file (%%p: relative to the data directory).")
        parser.add_argument("name", help="WAL file name (%%f), e.g. 000000010000000000000003.")
        parser.add_argument(
            "--cluster-id",
            help="The server's system identifier; default: read from global/pg_control in the current directory.",
        )
        parser.add_argument("--storage", choices=["local", "s3"], help="Where to store (default: PITR_STORAGE).")

    def handle(self, *args, **options):
        try:
            cluster_id = options["cluster_id"] or cluster_id_from_data_dir(".")
            result = wal_archive(
                path=options["path"], name=options["name"], cluster_id=cluster_id, storage=options["storage"]
            )
        except OSError as exc:  # storage unreachable or not writable: PostgreSQL keeps the file and retries
            raise CommandError(f"Cannot archive {options['name']}: {exc}") from exc
        state = "already archived (identical)" if result.already_archived else "archived"
        self.stdout.write(
            f"{result.name} {state}: {result.size_bytes:,} -> {result.stored_bytes:,} bytes, "
            f"sha256 {result.sha256[:16]}…, {result.storage_name}"
        )
