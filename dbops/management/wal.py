"""The base of archive_wal and restore_wal, the commands the PostgreSQL server itself runs for one WAL
file: they start fast, touch no database, find the cluster id in the data directory unless given, and
turn a storage that cannot be reached into one line (the server keeps the file and retries)."""

from __future__ import annotations

from django.core.management.base import CommandError

from dbops.management.base import DbopsCommand
from dbops.management.options import add_storage_option
from dbops.services.pitr.wal_archive import cluster_id_from_data_dir


class WalFileCommand(DbopsCommand):
    requires_system_checks = []  # runs once per WAL segment: start fast, touch no database
    recovers_leftovers = False
    verb = ""  # "archive" / "restore", for the one line an unreachable storage gives
    storage_help = ""
    file_arguments: tuple[tuple[str, str], ...] = ()  # (name, help) of the positional arguments, in order

    def add_arguments(self, parser):
        for name, help_text in self.file_arguments:
            parser.add_argument(name, help=help_text)
        parser.add_argument(
            "--cluster-id",
            help="The server's system identifier; default: read from global/pg_control in the current directory.",
        )
        add_storage_option(parser, what=self.storage_help)

    def handle(self, *args, **options):
        cluster_id = options["cluster_id"] or cluster_id_from_data_dir(".")
        try:
            line = self.transfer(options, cluster_id=cluster_id)
        except OSError as exc:
            raise CommandError(f"Cannot {self.verb} {options['name']}: {exc}") from exc
        self.stdout.write(line)

    def transfer(self, options: dict, *, cluster_id: str) -> str:
        """Moves the one file and says what was done, in one line."""
        raise NotImplementedError
