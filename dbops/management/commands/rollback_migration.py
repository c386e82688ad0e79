"""rollback_migration: restore the tables of a snapshot exactly (see dbops.services.datamigration.snapshots)."""

from __future__ import annotations

from django.core.management.base import CommandError

from dbops.management.base import DbopsCommand
from dbops.management.options import add_database_option
from dbops.services.datamigration.snapshots import snapshot_get, snapshot_rollback


class Command(DbopsCommand):
    help = "Restores the tables of a snapshot to their exact state at snapshot time, in one transaction."

    def add_arguments(self, parser):
        parser.add_argument("--snapshot-id", required=True, help="Snapshot to restore (see list_snapshots).")
        parser.add_argument(
            "--confirm", action="store_true", help="Required: the tables lose every change made since the snapshot."
        )
        parser.add_argument(
            "--discard-later-changes",
            action="store_true",
            help="Roll back even though rows were written to these tables after the import (they are lost).",
        )
        add_database_option(parser)

    def handle(self, *args, **options):
        snapshot = snapshot_get(snapshot_id=options["snapshot_id"], using=options["database"])
        if not options["confirm"]:
            raise CommandError(
                f"Rolling back {snapshot.id} replaces every row of {', '.join(snapshot.tables)}; "
                "add --confirm to do it."
            )
        result = snapshot_rollback(
            snapshot_id=snapshot.id, discard_later_changes=options["discard_later_changes"], using=options["database"]
        )
        for table in result.tables:
            self.stdout.write(
                f"  {table:<24} {result.row_counts.get(table, 0):>12,} rows  {result.checksums_after[table][:16]}"
            )
        self.stdout.write(
            self.style.SUCCESS(f"Rolled back to {result.snapshot_id}; table checksums match the snapshot.")
        )
