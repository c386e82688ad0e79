"""list_snapshots: the rollback snapshots taken before imports."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from dbops.management.base import DbopsCommand
from dbops.management.output import write_json
from dbops.services.datamigration.snapshots import snapshot_list


class Command(DbopsCommand):
    help = "Lists rollback snapshots (newest first): id, created, tables, row counts, checksum, size, the import."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the snapshots as a JSON list.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help='Database alias (default "default").')

    def handle(self, *args, **options):
        snapshots = snapshot_list(using=options["database"])
        if options["json"]:
            write_json(
                self.stdout,
                [
                    {
                        "id": snapshot.id,
                        "created_at": snapshot.created_at.isoformat(),
                        "status": snapshot.status,
                        "tables": snapshot.tables,
                        "row_counts": snapshot.row_counts,
                        "checksum": snapshot.checksum,
                        "size_bytes": snapshot.size_bytes,
                        "import_run": snapshot.import_run_id,
                        "reason": snapshot.reason,
                    }
                    for snapshot in snapshots
                ],
            )
            return
        if not snapshots:
            self.stdout.write("No snapshots.")
            return
        for snapshot in snapshots:
            rows = sum(snapshot.row_counts.values())
            self.stdout.write(
                f"{snapshot.id}  {snapshot.created_at:%Y-%m-%d %H:%M:%S}  {snapshot.status:<11}  {rows:>10,} rows  "
                f"{snapshot.size_bytes:>12,} B  {snapshot.checksum[:12]}  import #{snapshot.import_run_id or '-'}  "
                f"{', '.join(snapshot.tables)}"
            )
