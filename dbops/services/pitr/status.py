"""`pitr status`: per cluster, its base backups, the extent of its WAL archive, and the gaps in it
that would stop a restore (see wal_gaps.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dbops.models import BackupRecord, PitrBaseBackup
from dbops.services.pitr.wal_archive import archived_cluster_ids, pitr_storage, wal_last_archived_at
from dbops.services.pitr.wal_gaps import WalGap, base_backup_wal_coverage, wal_archive_listing


@dataclass
class PitrClusterStatus:
    cluster_id: str
    # id, finished_at, start_wal, size_bytes, storage, storage_name, verification_status, and in this
    # storage: wal_until (newest segment a restore can replay to), wal_first_missing (None: no gap); newest first
    base_backups: list[dict]
    wal_files: int
    first_wal: str | None
    last_wal: str | None
    last_archived_at: datetime | None
    timeline: int | None = None  # the timeline a restore from the oldest base backup ends on
    gaps: list[WalGap] = field(default_factory=list)  # from the oldest base backup's first segment on


def pitr_status(*, storage: str | None = None) -> list[PitrClusterStatus]:
    """Per cluster: its succeeded base backups and the extent and gaps of its WAL archive."""
    storage_kind, _backend = pitr_storage(storage)
    by_cluster: dict[str, list[PitrBaseBackup]] = {}
    base_backups = (
        PitrBaseBackup.objects.filter(backup__status=BackupRecord.Status.SUCCEEDED)
        .select_related("backup")
        .order_by("-backup__finished_at")
    )
    for pitr in base_backups:
        by_cluster.setdefault(pitr.cluster_id, []).append(pitr)
    statuses = []
    for cluster_id in sorted(set(by_cluster) | set(archived_cluster_ids(storage=storage_kind))):
        listing = wal_archive_listing(cluster_id=cluster_id, storage=storage_kind)
        segments = [name for name in listing.names if len(name) >= 24]
        status = PitrClusterStatus(
            cluster_id=cluster_id,
            base_backups=[],
            wal_files=len(listing.names),
            first_wal=segments[0][:24] if segments else None,
            last_wal=segments[-1][:24] if segments else None,
            last_archived_at=wal_last_archived_at(cluster_id=cluster_id, storage=storage_kind),
        )
        for pitr in by_cluster.get(cluster_id, []):  # newest first: the oldest one's gaps are the cluster's
            entry = {
                "id": pitr.backup_id,
                "finished_at": pitr.backup.finished_at,
                "start_wal": pitr.start_wal,
                "size_bytes": pitr.backup.size_bytes,
                "storage": pitr.storage,
                "storage_name": pitr.backup.storage_name,
                "verification_status": pitr.backup.verification_status,
            }
            if pitr.storage == storage_kind:
                coverage = base_backup_wal_coverage(pitr, listing)
                entry["wal_until"] = coverage.gaps[0].after if coverage.gaps else coverage.last_wal
                entry["wal_first_missing"] = coverage.gaps[0].first_missing if coverage.gaps else None
                status.timeline, status.gaps = coverage.timeline, coverage.gaps
            status.base_backups.append(entry)
        statuses.append(status)
    return statuses
