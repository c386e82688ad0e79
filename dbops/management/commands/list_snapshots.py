"""list_snapshots: the rollback snapshots taken before imports, newest first, cut at --limit."""

from __future__ import annotations

from dbops.management.base import DbopsCommand
from dbops.management.options import add_database_option, add_json_option, add_limit_option
from dbops.management.output import human_bytes, page_json, page_of, write_json, write_more
from dbops.models import Snapshot
from dbops.services.datamigration.snapshots import snapshot_import_unfinished, snapshot_list


class Command(DbopsCommand):
    help = (
        "Lists rollback snapshots (newest first, at most --limit): id, created, tables, row counts, checksum, "
        'size, the import. --json prints {"total": N, "limit": N, "snapshots": [...]}.'
    )

    def add_arguments(self, parser):
        add_json_option(parser, what="the snapshots")
        add_limit_option(parser, what="snapshots")
        add_database_option(parser)

    def handle(self, *args, **options):
        page = page_of(snapshot_list(using=options["database"]), limit=options["limit"])
        if options["json"]:
            write_json(self.stdout, page_json(page, "snapshots", [_as_json(snapshot) for snapshot in page.items]))
            return
        if not page.total:
            self.stdout.write("No snapshots.")
            return
        id_width = max(len(snapshot.id) for snapshot in page.items)
        self.stdout.write(
            f"{'id':<{id_width}}  {'created':<19}  {'status':<11}  {'rows':>10}  {'size':>10}  {'checksum':<12}  "
            f"{'import':<7}  tables"
        )
        for snapshot in page.items:
            rows = sum(snapshot.row_counts.values())
            import_run = f"#{snapshot.import_run_id}" if snapshot.import_run_id else "-"
            if snapshot_import_unfinished(snapshot):  # a killed import's: rollback refuses it unasked
                import_run += " (unfinished)"
            self.stdout.write(
                f"{snapshot.id:<{id_width}}  {snapshot.created_at:%Y-%m-%d %H:%M:%S}  {snapshot.status:<11}  "
                f"{rows:>10,}  {human_bytes(snapshot.size_bytes):>10}  {snapshot.checksum[:12]:<12}  "
                f"{import_run:<7}  {', '.join(snapshot.tables)}"
            )
        write_more(self.stdout, page, "snapshots")


def _as_json(snapshot: Snapshot) -> dict:
    return {
        "id": snapshot.id,
        "created_at": snapshot.created_at.isoformat(),
        "status": snapshot.status,
        "tables": snapshot.tables,
        "row_counts": snapshot.row_counts,
        "checksum": snapshot.checksum,
        "size_bytes": snapshot.size_bytes,
        "import_run": snapshot.import_run_id,
        "import_finished": not snapshot_import_unfinished(snapshot),
        "reason": snapshot.reason,
    }
