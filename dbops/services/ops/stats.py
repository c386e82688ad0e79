"""stats: database size, per-table rows and sizes, index usage, cache hit ratio, connections, backups.

The engine answers what it can (dbops.engines: Connector.database_stats). PostgreSQL from its catalog
and statistics views (cheap: estimated rows come from its planner statistics; `exact=True` adds one
count(*) per table); SQLite what applies: sizes when the library can tell, exact counts, no index
usage, cache or connections.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Count, Max, Q, Sum

from dbops.engines import get_connector
from dbops.engines.base import DatabaseFacts, IndexStats, TableStats
from dbops.models import BackupRecord

__all__ = ["BackupTotals", "DatabaseStats", "IndexStats", "TableStats", "backup_totals", "stats_collect"]


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
class DatabaseStats(DatabaseFacts):
    backups: BackupTotals | None = None

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
    facts = get_connector(using).database_stats(exact=exact)
    measured = {item.name: getattr(facts, item.name) for item in fields(DatabaseFacts)}
    return DatabaseStats(**measured, backups=backup_totals(using=using))


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
