"""After base-backup retention: remove the archived WAL that no kept PITR base backup needs
(which files: `dbops.services.pitr.recovery.pitr_wal_needed`, owned by PITR; this module only deletes)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from dbops.models import BackupRecord, PitrBaseBackup
from dbops.services.pitr.recovery import pitr_wal_needed
from dbops.services.pitr.wal_archive import pitr_storage, wal_prefix
from dbops.services.reports import report_as_dict

logger = logging.getLogger(__name__)


@dataclass
class WalPrune:
    storage: str
    skipped: str = ""  # why nothing was pruned at all
    deleted: dict[str, list[str]] = field(default_factory=dict)
    would_delete: dict[str, list[str]] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return report_as_dict(self)


def wal_prune(*, dry_run: bool = False, storage: str | None = None, deleting: frozenset[int] = frozenset()) -> WalPrune:
    """Deletes archived WAL older than every kept base backup of its cluster.

    Prunes nothing while a base backup is running (its WAL is archived before it has a catalog
    row), and never touches a cluster that has no kept base backup at all (all its WAL would be
    "removable": retention must not empty an archive on its own). Manifest first, then data: a
    half-deleted file is no longer listed as archived. `deleting`: ids of base backups a dry run
    would delete, so its list matches what the real run would do."""
    kind, backend = pitr_storage(storage)
    result = WalPrune(storage=kind)
    if BackupRecord.objects.filter(kind=BackupRecord.Kind.BASE, status=BackupRecord.Status.RUNNING).exists():
        result.skipped = "a base backup is running"
        return result
    kept = list(
        BackupRecord.objects.filter(kind=BackupRecord.Kind.BASE, status=BackupRecord.Status.SUCCEEDED).exclude(
            pk__in=deleting
        )
    )
    covered = set(PitrBaseBackup.objects.filter(backup__in=kept).values_list("cluster_id", flat=True))
    retention = pitr_wal_needed(kept_base_backups=kept, storage=kind)
    for cluster_id, names in retention.removable.items():
        if cluster_id not in covered or not names:
            continue
        if dry_run:
            result.would_delete[cluster_id] = names
            continue
        prefix = wal_prefix(cluster_id)
        for name in names:
            try:
                backend.delete(f"{prefix}/{name}.json")
                backend.delete(f"{prefix}/{name}.zst")
            except Exception as exc:  # noqa: BLE001 (storage backends raise many types; reported per file)
                logger.warning("retention could not delete WAL %s of cluster %s: %s", name, cluster_id, exc)
                result.failed.append((f"{cluster_id}/{name}", str(exc)))
            else:
                result.deleted.setdefault(cluster_id, []).append(name)
    if result.deleted:
        logger.info("retention deleted %d archived WAL files", sum(map(len, result.deleted.values())))
    return result
