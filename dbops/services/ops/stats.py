"""stats: database size, per-table rows and sizes, index usage, cache hit ratio, connections, backups.

PostgreSQL answers from its catalog and statistics views (cheap: estimated rows come from
pg_class.reltuples; `exact=True` adds one count(*) per table). SQLite answers what applies: sizes
from the dbstat table when the library has it, exact counts, no index usage, cache or connections.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Count, Max, Q, Sum

from dbops.models import BackupRecord


@dataclass
class TableStats:
    name: str
    rows_estimated: int | None
    rows_exact: int | None = None
    table_bytes: int | None = None
    index_bytes: int | None = None
    total_bytes: int | None = None


@dataclass
class IndexStats:
    table: str
    name: str
    scans: int | None
    size_bytes: int | None
    unique: bool

    @property
    def unused(self) -> bool:
        # Unique and primary-key indexes enforce constraints, so zero scans does not make them removable.
        return self.scans == 0 and not self.unique


@dataclass
class BackupTotals:
    records: int
    by_status: dict[str, int]
    succeeded_bytes: int
    uploaded_to_s3: int
    s3_bytes: int
    last_finished_at: datetime | None
    local_files: int
    local_bytes: int


@dataclass
class DatabaseStats:
    engine: str
    database: str
    size_bytes: int | None
    tables: list[TableStats]
    indexes: list[IndexStats]
    cache_hit_ratio: float | None
    connections: int | None
    max_connections: int | None
    backups: BackupTotals | None
    notes: list[str] = field(default_factory=list)

    @property
    def unused_indexes(self) -> list[IndexStats]:
        return [index for index in self.indexes if index.unused]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["unused_indexes"] = [f"{index.table}.{index.name}" for index in self.unused_indexes]
        for index, stats in zip(data["indexes"], self.indexes, strict=True):
            index["unused"] = stats.unused
        return data


def stats_collect(*, using: str = DEFAULT_DB_ALIAS, exact: bool = False) -> DatabaseStats:
    connection = connections[using]
    collector = _postgresql if connection.vendor == "postgresql" else _sqlite
    stats = collector(connection, exact)
    stats.backups = backup_totals(using=using)
    return stats


def backup_totals(*, using: str = DEFAULT_DB_ALIAS) -> BackupTotals:
    """The catalog's view of backups plus what the local backup folder really holds."""
    records = BackupRecord.objects.filter(database_alias=using)
    by_status = dict(records.values_list("status").annotate(count=Count("id")).order_by("status"))
    totals = records.aggregate(
        succeeded_bytes=Sum("size_bytes", filter=Q(status=BackupRecord.Status.SUCCEEDED)),
        uploaded=Count("id", filter=Q(uploaded_to_s3=True, status=BackupRecord.Status.SUCCEEDED)),
        s3_bytes=Sum("size_bytes", filter=Q(uploaded_to_s3=True, status=BackupRecord.Status.SUCCEEDED)),
        last=Max("finished_at", filter=Q(status=BackupRecord.Status.SUCCEEDED)),
    )
    local_files = local_bytes = 0
    folder = Path(settings.BACKUP_DIR)
    if folder.is_dir():
        for root, _, files in os.walk(folder):
            for name in files:
                local_files += 1
                local_bytes += (Path(root) / name).stat().st_size
    return BackupTotals(
        records=sum(by_status.values()),
        by_status=by_status,
        succeeded_bytes=totals["succeeded_bytes"] or 0,
        uploaded_to_s3=totals["uploaded"],
        s3_bytes=totals["s3_bytes"] or 0,
        last_finished_at=totals["last"],
        local_files=local_files,
        local_bytes=local_bytes,
    )


_PG_TABLES = """
    SELECT s.relname,
           CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE s.n_live_tup END,
           pg_table_size(s.relid), pg_indexes_size(s.relid), pg_total_relation_size(s.relid),
           quote_ident(s.schemaname) || '.' || quote_ident(s.relname)
      FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
     ORDER BY pg_total_relation_size(s.relid) DESC, s.relname
"""
_PG_INDEXES = """
    SELECT s.relname, s.indexrelname, s.idx_scan, pg_relation_size(s.indexrelid), i.indisunique OR i.indisprimary
      FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
     ORDER BY s.relname, s.indexrelname
"""
_PG_CACHE = """
    SELECT sum(blks_hit), sum(blks_read) FROM pg_stat_database WHERE datname = current_database()
"""
_PG_CONNECTIONS = """
    SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),
           current_setting('max_connections')::int
"""


def _postgresql(connection, exact: bool) -> DatabaseStats:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), pg_database_size(current_database())")
        database, size = cursor.fetchone()
        cursor.execute(_PG_TABLES)
        table_rows = cursor.fetchall()
        tables = [
            TableStats(name, estimate, None, data, index, total) for name, estimate, data, index, total, _ in table_rows
        ]
        if exact:
            for table, (*_, qualified) in zip(tables, table_rows, strict=True):
                cursor.execute(f"SELECT count(*) FROM {qualified}")  # noqa: S608 - quote_ident'ed catalog name
                table.rows_exact = cursor.fetchone()[0]
        cursor.execute(_PG_INDEXES)
        indexes = [IndexStats(*row) for row in cursor.fetchall()]
        cursor.execute(_PG_CACHE)
        hits, reads = cursor.fetchone()
        cursor.execute(_PG_CONNECTIONS)
        active, maximum = cursor.fetchone()
    hits, reads = int(hits or 0), int(reads or 0)  # sum() of bigint is numeric (Decimal)
    total_blocks = hits + reads
    return DatabaseStats(
        engine="postgresql",
        database=database,
        size_bytes=size,
        tables=tables,
        indexes=indexes,
        cache_hit_ratio=round(hits / total_blocks, 4) if total_blocks else None,
        connections=active,
        max_connections=maximum,
        backups=None,
    )


def _sqlite(connection, exact: bool) -> DatabaseStats:
    quote = connection.ops.quote_name
    notes = ["SQLite keeps no index usage, cache or connection statistics."]
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute("PRAGMA page_size")
        size = pages * cursor.fetchone()[0]
        cursor.execute(
            "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        objects = cursor.fetchall()
        sizes = _sqlite_sizes(cursor, notes)
        estimates = _sqlite_estimates(cursor)
        tables, indexes = [], []
        for kind, name, table_name in objects:
            if kind == "index":
                cursor.execute(f"PRAGMA index_list({quote(table_name)})")
                unique = any(row[1] == name and row[2] for row in cursor.fetchall())
                indexes.append(IndexStats(table_name, name, None, sizes.get(name), unique))
                continue
            table = TableStats(name, estimates.get(name), table_bytes=sizes.get(name))
            if exact:
                cursor.execute(f"SELECT count(*) FROM {quote(name)}")  # noqa: S608 - quoted catalog name
                table.rows_exact = cursor.fetchone()[0]
            tables.append(table)
    if sizes:
        for table in tables:
            table.index_bytes = sum(sizes.get(index.name) or 0 for index in indexes if index.table == table.name)
            table.total_bytes = (table.table_bytes or 0) + table.index_bytes
        tables.sort(key=lambda table: (-(table.total_bytes or 0), table.name))
    return DatabaseStats(
        engine="sqlite",
        database=str(connection.settings_dict["NAME"]),
        size_bytes=size,
        tables=tables,
        indexes=indexes,
        cache_hit_ratio=None,
        connections=None,
        max_connections=None,
        backups=None,
        notes=notes,
    )


def _sqlite_sizes(cursor, notes: list[str]) -> dict[str, int]:
    try:
        cursor.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
    except Exception:  # noqa: BLE001 - dbstat is a compile-time option of the SQLite library
        notes.append("This SQLite library has no dbstat table: per-table sizes are unknown.")
        return {}
    return dict(cursor.fetchall())


def _sqlite_estimates(cursor) -> dict[str, int]:
    """Row estimates that ANALYZE left in sqlite_stat1 (first number of each stat), if any."""
    cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
    if cursor.fetchone() is None:
        return {}
    cursor.execute(
        "SELECT tbl, max(CAST(substr(stat, 1, instr(stat || ' ', ' ') - 1) AS INTEGER)) FROM sqlite_stat1 GROUP BY tbl"
    )
    return dict(cursor.fetchall())
