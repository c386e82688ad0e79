"""stats: database size, per-table rows and sizes, index usage, cache hit ratio, connections, backups."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from dbops.management.base import DbopsCommand
from dbops.management.output import human_bytes, write_json
from dbops.services.ops.stats import stats_collect


class Command(DbopsCommand):
    help = (
        "Database statistics: size, rows per table (estimated; exact with --exact), table and index sizes, "
        "index usage and unused indexes, cache hit ratio, connections and backup storage totals."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print one JSON document instead of tables.")
        parser.add_argument("--exact", action="store_true", help="Also count every table's rows (one count(*) each).")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help='Database alias (default "default").')

    def handle(self, *args, **options):
        stats = stats_collect(using=options["database"], exact=options["exact"])
        if options["json"]:
            write_json(self.stdout, stats.as_dict())
            return
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
        for table in stats.tables:
            estimated = "-" if table.rows_estimated is None else f"{table.rows_estimated:,}"
            exact = "-" if table.rows_exact is None else f"{table.rows_exact:,}"
            write(
                f"  {table.name:<32} {estimated:>12} {exact:>12} {human_bytes(table.table_bytes):>10} "
                f"{human_bytes(table.index_bytes):>10} {human_bytes(table.total_bytes):>10}"
            )

        write(heading("Indexes"))
        for index in stats.indexes:
            scans = "-" if index.scans is None else f"{index.scans:,} scans"
            flag = "  UNUSED" if index.unused else ""
            qualified = f"{index.table}.{index.name}"
            write(f"  {qualified:<64} {human_bytes(index.size_bytes):>10} {scans:>14}{flag}")
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
