"""stats: database size, per-table rows and sizes, index usage, cache hit ratio, connections, backups.
The table and index lists are the largest first, cut at --limit."""

from __future__ import annotations

from dbops.management.base import DbopsCommand
from dbops.management.options import add_database_option, add_json_option, add_limit_option
from dbops.management.output import cut_lists, human_bytes, page_of, write_json, write_more
from dbops.services.ops.stats import DatabaseStats, stats_collect


class Command(DbopsCommand):
    help = (
        "Database statistics: size, rows per table (PostgreSQL: estimated, exact with --exact; SQLite: always "
        "exact), table and index sizes, "
        "index usage and unused indexes, cache hit ratio, connections and backup storage totals. Tables and "
        "indexes are listed largest first, at most --limit of each; --json carries tables_total, indexes_total "
        "and unused_indexes_total."
    )

    def add_arguments(self, parser):
        add_json_option(parser, what="one document instead of tables")
        parser.add_argument(
            "--exact",
            action="store_true",
            help="Also count every table's rows (one count(*) each); SQLite always counts.",
        )
        add_limit_option(parser, what="tables and at most N indexes")
        add_database_option(parser)

    def handle(self, *args, **options):
        stats = stats_collect(using=options["database"], exact=options["exact"])
        # Largest first, so a cut list keeps what matters; the engine's order where sizes are equal or unknown.
        stats.tables.sort(key=lambda table: -(table.total_bytes or 0))
        stats.indexes.sort(key=lambda index: -(index.size_bytes or 0))
        if options["json"]:
            write_json(self.stdout, _as_json(stats, limit=options["limit"]))
        else:
            self._write_text(stats, limit=options["limit"])

    def _write_text(self, stats: DatabaseStats, *, limit: int) -> None:
        tables, indexes = page_of(stats.tables, limit=limit), page_of(stats.indexes, limit=limit)
        write, heading = self.stdout.write, self.style.MIGRATE_HEADING
        write(heading(f"{stats.engine} database {stats.database}: {human_bytes(stats.size_bytes)}"))
        if stats.cache_hit_ratio is not None:
            write(f"  cache hit ratio {stats.cache_hit_ratio:.2%}")
        if stats.connections is not None:
            write(f"  connections     {stats.connections} of {stats.max_connections}")
        for note in stats.notes:
            write(f"  note: {note}")

        write(heading("Tables"))
        write(f"  {'table':<32} {'rows (est.)':>12} {'rows (exact)':>12} {'table':>10} {'indexes':>10} {'total':>10}")
        for table in tables.items:
            estimated = "-" if table.rows_estimated is None else f"{table.rows_estimated:,}"
            exact = "-" if table.rows_exact is None else f"{table.rows_exact:,}"
            write(
                f"  {table.name:<32} {estimated:>12} {exact:>12} {human_bytes(table.table_bytes):>10} "
                f"{human_bytes(table.index_bytes):>10} {human_bytes(table.total_bytes):>10}"
            )
        write_more(self.stdout, tables, "tables", indent="  ")

        write(heading("Indexes"))
        for index in indexes.items:
            scans = "-" if index.scans is None else f"{index.scans:,} scans"
            flag = "  UNUSED" if index.unused else ""
            qualified = f"{index.table}.{index.name}"
            write(f"  {qualified:<64} {human_bytes(index.size_bytes):>10} {scans:>14}{flag}")
        write_more(self.stdout, indexes, "indexes", indent="  ")
        if stats.engine == "postgresql":
            write(f"  unused (no scans, not unique): {len(stats.unused_indexes)}")

        backups = stats.backups
        write(heading("Backups"))
        statuses = ", ".join(f"{status} {count}" for status, count in backups.by_status.items()) or "none"
        write(f"  catalog: {backups.records} records ({statuses}); {human_bytes(backups.succeeded_bytes)} succeeded")
        write(
            f"  uploaded to S3: {backups.uploaded_to_s3} ({human_bytes(backups.s3_bytes)}); "
            f"last success: {backups.last_finished_at or 'never'}"
        )
        write(f"  local folder: {backups.local_files} files, {human_bytes(backups.local_bytes)}")


def _as_json(stats: DatabaseStats, *, limit: int) -> dict:
    """stats.as_dict() with each list cut at `limit` and its full length beside it (`tables_total`…)."""
    return cut_lists({**stats.as_dict(), "limit": limit}, ("tables", "indexes", "unused_indexes"), limit=limit)
