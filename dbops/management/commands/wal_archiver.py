"""wal_archiver: the long-running asynchronous WAL archiver (archive_command: python …/walspool.py SPOOL %f)."""

from __future__ import annotations

import signal

from django.core.management.base import CommandError

from dbops.management.base import DbopsCommand
from dbops.management.options import add_storage_option
from dbops.services.pitr.wal_archiver import wal_archiver_run


class Command(DbopsCommand):
    help = (
        "Archives the server's ready WAL files in parallel (zstd, SHA-256, manifest) and acknowledges each "
        "in SPOOL once it is durable; the server's archive_command (`pitr setup --spool SPOOL` prints it) waits for "
        "that acknowledgement. Runs until SIGTERM/SIGINT (finishing the files in flight), or with --once until "
        "every ready file is acknowledged."
    )
    requires_system_checks = []
    recovers_leftovers = False

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", required=True, help="The server's data directory (its pg_wal is read).")
        parser.add_argument("--spool", required=True, help="The folder archive_command and the archiver share.")
        parser.add_argument("--workers", type=int, default=4, help="WAL files archived at once (default 4).")
        parser.add_argument(
            "--level", type=int, default=1, help="zstd level (default 1: on WAL as small as 3, at twice the rate)."
        )
        parser.add_argument("--once", action="store_true", help="Archive what is ready now, then exit.")
        parser.add_argument("--cluster-id", help="The server's system identifier; default: read from its pg_control.")
        add_storage_option(parser, what="Where to store")

    def handle(self, *args, **options):
        stopping = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.append(True))
        run = wal_archiver_run(
            data_dir=options["data_dir"],
            spool=options["spool"],
            cluster_id=options["cluster_id"],
            storage=options["storage"],
            workers=options["workers"],
            level=options["level"],
            once=options["once"],
            should_stop=lambda: bool(stopping),
        )
        self.stdout.write(
            f"Archived {run.archived} WAL file(s) ({run.raw_bytes:,} -> {run.stored_bytes:,} bytes), "
            f"{run.already_archived} already archived, {len(run.failures)} failing."
        )
        if run.failures:
            name, why = min(run.failures.items())
            raise CommandError(f"{len(run.failures)} WAL file(s) could not be archived; {name}: {why}")
