"""Rollback snapshots: copies of whole tables, taken before an import, kept in the operations database.

The copies live beside the catalog (DBOPS["DATABASE"]), not in the data they protect, so a full restore
of the application's database does not take them away: a snapshot stays restorable whatever the data
went through. Each table is streamed across (COPY on PostgreSQL; `CREATE TABLE … AS SELECT *` where
the operations state shares the data's database) and its checksum recorded: sha256 of its rows in
primary-key order. A rollback empties the tables and copies the rows back in one transaction, resets
the sequences, and proves the result by comparing checksums before it commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from dbops.conf import operations_alias
from dbops.engines import get_connector
from dbops.exceptions import SnapshotError, SnapshotLaterChanges
from dbops.models import DataTransferRun, Snapshot
from dbops.services.datamigration.entities import ENTITIES, resolve_entities

COPY_PREFIX = "dbops_snap_"


@dataclass
class RollbackResult:
    snapshot_id: str
    tables: list[str]
    row_counts: dict[str, int]
    checksums_before: dict[str, str]
    checksums_after: dict[str, str]


def _combined(checksums: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{table}:{checksums[table]}\n" for table in sorted(checksums)).encode()).hexdigest()


def _new_snapshot_id(using: str) -> str:
    base = f"snapshot_{timezone.now():%Y%m%d_%H%M%S}"
    snapshot_id, suffix = base, 1
    while Snapshot.objects.filter(id=snapshot_id).exists():
        suffix += 1
        snapshot_id = f"{base}_{suffix}"
    return snapshot_id


def _tables_for(entities: list[str] | str | None) -> list[type[models.Model]]:
    return [entity.model for entity in resolve_entities(entities)]


def snapshot_create(
    *,
    entities: list[str] | str | None,
    using: str = DEFAULT_DB_ALIAS,
    reason: str = "",
    import_run: DataTransferRun | None = None,
) -> Snapshot:
    """Copies the tables of the entities (all when none are named) into the operations database and
    records their checksums; the copies and the record are committed together or not at all."""
    connector, store = get_connector(using), get_connector(operations_alias())
    table_models = _tables_for(entities)
    with transaction.atomic(using=using), transaction.atomic(using=store.alias):
        # Others may read but not write until commit: one consistent picture of all the tables.
        connector.lock_tables([model._meta.db_table for model in table_models], mode="read")
        snapshot_id = _new_snapshot_id(using)
        copies, row_counts, checksums = {}, {}, {}
        for model in table_models:
            table = model._meta.db_table
            copy = f"{COPY_PREFIX}{snapshot_id.removeprefix('snapshot_')}_{table}"[:63]
            row_counts[table] = connector.table_copy_to(table, store, copy)
            copies[table] = copy
            checksums[table] = store.table_checksum(copy, model._meta.pk.column)
        sequences = connector.sequence_positions(
            [(model._meta.db_table, model._meta.pk.column) for model in table_models]
        )
        snapshot = Snapshot.objects.create(
            id=snapshot_id,
            created_at=timezone.now(),
            database_alias=using,
            tables=[model._meta.db_table for model in table_models],
            copies=copies,
            row_counts=row_counts,
            checksums=checksums,
            checksum=_combined(checksums),
            sequences=sequences,
            size_bytes=store.tables_size_bytes(list(copies.values())),
            reason=reason,
            import_run=import_run,
        )
    return snapshot


def snapshot_discard(*, snapshot_id: str) -> None:
    """Removes a snapshot and its copies (one taken for an import that then failed): the failed import
    changed nothing, so its snapshot would only be a second copy of the data as it still is."""
    store = get_connector(operations_alias())
    with transaction.atomic(using=store.alias):
        snapshot = Snapshot.objects.select_for_update().filter(id=snapshot_id).first()
        if snapshot is None:  # it shared the import's transaction and went with its rollback
            return
        for copy in sorted(snapshot.copies.values()):
            if copy.startswith(COPY_PREFIX):
                store.table_drop(copy)
        snapshot.delete()


def snapshot_list(*, using: str | None = None) -> QuerySet[Snapshot]:
    """Snapshots, newest first; of one database alias when `using` is given (lazy: count or cut it)."""
    snapshots = Snapshot.objects.select_related("import_run")
    return snapshots.filter(database_alias=using) if using else snapshots


def snapshot_get(*, snapshot_id: str, using: str = DEFAULT_DB_ALIAS) -> Snapshot:
    try:
        return Snapshot.objects.get(id=snapshot_id, database_alias=using)
    except Snapshot.DoesNotExist:
        known = list(Snapshot.objects.filter(database_alias=using).values_list("id", flat=True)[:5])
        hint = f" Recent snapshots: {', '.join(known)}." if known else " There are no snapshots."
        raise SnapshotError(f"Snapshot {snapshot_id!r} does not exist.{hint}") from None


def snapshot_seal(*, snapshot_id: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """Records the checksums of the snapshot's tables as the import left them (called by the import,
    after its write), so a rollback can tell which tables changed after the import."""
    snapshot = Snapshot.objects.get(id=snapshot_id)
    connector = get_connector(using)
    snapshot.checksums_after_import = {
        table: connector.table_checksum(table, ENTITIES.by_table(table).model._meta.pk.column)
        for table in snapshot.tables
    }
    snapshot.save(update_fields=["checksums_after_import"])


def snapshot_later_changes(*, snapshot: Snapshot, checksums_now: dict[str, str]) -> list[str]:
    """The tables whose rows changed since the import the snapshot was taken for (none known: [])."""
    after_import = snapshot.checksums_after_import or {}
    return [table for table in snapshot.tables if table in after_import and checksums_now[table] != after_import[table]]


def snapshot_import_unfinished(snapshot: Snapshot) -> str:
    """What the snapshot's import is when it never sealed it or did not succeed ("" when it did): a
    process killed mid-import leaves its snapshot, whose tables may have changed in any way since."""
    run = snapshot.import_run
    if run is None or snapshot.checksums_after_import and run.status == DataTransferRun.Status.SUCCEEDED:
        return ""  # taken on its own (snapshot_create without an import): going back to it is its purpose
    return f"import #{run.pk}, which did not finish ({run.status})"


def snapshot_rollback(
    *, snapshot_id: str, discard_later_changes: bool = False, using: str = DEFAULT_DB_ALIAS
) -> RollbackResult:
    """Restores the snapshot's tables exactly (rows and sequences) in one transaction.

    Refuses, changing nothing, when rows were written to those tables after the import the snapshot
    was taken for (unless `discard_later_changes`), and when rows in other tables still point at rows
    the rollback removes."""
    snapshot = snapshot_get(snapshot_id=snapshot_id, using=using)
    connection = connections[using]
    connector, store = get_connector(using), get_connector(operations_alias())
    known = [entity for entity in map(ENTITIES.by_table, snapshot.tables) if entity is not None]
    entities = sorted(known, key=ENTITIES.position)
    by_table = {entity.table: entity.model for entity in entities}
    ordered = list(by_table)  # dependency order
    with transaction.atomic(using=operations_alias()), transaction.atomic(using=using):
        # Held until the rollback commits: snapshot_prune skips a snapshot whose row is locked.
        try:
            snapshot = Snapshot.objects.select_for_update().get(id=snapshot.id)
        except Snapshot.DoesNotExist:  # pruned between the lookup above and this lock
            raise SnapshotError(f"Snapshot {snapshot.id!r} does not exist (it was just pruned).") from None
        if not connector.import_lock():  # an import and a rollback of the same tables would deadlock
            raise SnapshotError("An import or a rollback is running on this database; try again when it has finished.")
        # Before the later-changes check: a write committed while this waits for the lock is seen by the
        # check (each statement reads afresh), not refilled over.
        connector.lock_tables(ordered, mode="exclusive")
        checksums_before = {
            table: connector.table_checksum(table, by_table[table]._meta.pk.column) for table in ordered
        }
        unfinished = snapshot_import_unfinished(snapshot)
        if unfinished and not discard_later_changes:
            raise SnapshotLaterChanges(
                f"Snapshot {snapshot.id} was taken for {unfinished}: whether its rows are in the tables cannot be "
                "told, and rolling back would discard everything written to them since the snapshot. Nothing "
                "changed.",
                parameter="discard_later_changes",
            )
        later = snapshot_later_changes(snapshot=snapshot, checksums_now=checksums_before)
        if later and not discard_later_changes:
            raise SnapshotLaterChanges(
                f"Rows of {', '.join(later)} changed after the import {snapshot.id} was taken for; rolling back "
                "would discard those later changes too. Nothing changed.",
                parameter="discard_later_changes",
            )
        missing = [table for table in ordered if not snapshot.copies.get(table)]
        if missing:
            raise SnapshotError(f"Snapshot {snapshot.id} has no copy of {missing[0]}.")
        missing = [table for table in ordered if not store.table_exists(snapshot.copies[table])]
        if missing:
            raise SnapshotError(f"Snapshot {snapshot.id}: the copy of {missing[0]} is gone; nothing changed.")
        connector.tables_refill_from({table: snapshot.copies[table] for table in ordered}, store)
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(no_style(), [by_table[t] for t in ordered]):
                cursor.execute(statement)
        connector.sequence_positions_restore(snapshot.sequences)  # exactly where they were
        try:  # dangling references fail here, inside the transaction, not at commit
            connector.constraints_check()
        except IntegrityError as exc:
            raise SnapshotError(
                f"Cannot roll back {snapshot.id}: rows in other tables point at rows it would remove "
                f"({str(exc).splitlines()[0]}); nothing changed."
            ) from None
        checksums_after = {table: connector.table_checksum(table, by_table[table]._meta.pk.column) for table in ordered}
        mismatched = [table for table in ordered if checksums_after[table] != snapshot.checksums.get(table)]
        if mismatched:
            raise SnapshotError(
                f"Rollback of {snapshot.id} did not reproduce {', '.join(mismatched)}; nothing changed."
            )
        snapshot.status = Snapshot.Status.ROLLED_BACK
        snapshot.rolled_back_at = timezone.now()
        snapshot.save(update_fields=["status", "rolled_back_at"])
    return RollbackResult(
        snapshot_id=snapshot.id,
        tables=ordered,
        row_counts=dict(snapshot.row_counts),
        checksums_before=checksums_before,
        checksums_after=checksums_after,
    )


@dataclass
class PrunedSnapshot:
    id: str
    created_at: str
    status: str
    tables: list[str]  # the copy tables dropped (or that would be)
    size_bytes: int


@dataclass
class PruneResult:
    dry_run: bool
    older_than_days: int
    keep_last: int
    cutoff: str
    pruned: list[PrunedSnapshot] = field(default_factory=list)
    skipped_in_rollback: list[str] = field(default_factory=list)  # locked by a rollback in progress
    kept: int = 0

    @property
    def freed_bytes(self) -> int:
        return sum(snapshot.size_bytes for snapshot in self.pruned)


def _check_count(what: str, value, *, parameter: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SnapshotError(f"{what} must be a whole number, got {value!r}.", parameter=parameter)
    if value < 0:
        raise SnapshotError(f"{what} must be 0 or more, got {value}.", parameter=parameter)
    return value


def snapshot_prune(
    *, older_than_days: int, keep_last: int = 0, dry_run: bool = False, using: str = DEFAULT_DB_ALIAS
) -> PruneResult:
    """Drops the copy tables and deletes the records of snapshots taken more than `older_than_days`
    days ago, except the `keep_last` newest snapshots and any snapshot a rollback is using right now
    (its row is locked by snapshot_rollback). Each snapshot goes in its own transaction; a dry run
    lists the same snapshots and changes nothing."""
    older_than_days = _check_count("The age in days", older_than_days, parameter="older_than_days")
    keep_last = _check_count("The number of newest snapshots to keep", keep_last, parameter="keep_last")
    cutoff = timezone.now() - dt.timedelta(days=older_than_days)
    snapshots = Snapshot.objects.filter(database_alias=using)
    newest = list(snapshots.order_by("-created_at", "-id").values_list("id", flat=True)[:keep_last])
    candidates = list(snapshots.filter(created_at__lt=cutoff).exclude(id__in=newest).order_by("created_at", "id"))
    result = PruneResult(
        dry_run=dry_run, older_than_days=older_than_days, keep_last=keep_last, cutoff=cutoff.isoformat()
    )
    result.kept = snapshots.count() - len(candidates)
    store = get_connector(operations_alias())
    for candidate in candidates:
        with transaction.atomic(using=operations_alias()), transaction.atomic(using=using):
            locked = snapshots.select_for_update(skip_locked=True).filter(id=candidate.id).first()
            if locked is None:
                if snapshots.filter(id=candidate.id).exists():  # gone means pruned concurrently: not ours
                    result.skipped_in_rollback.append(candidate.id)
                    result.kept += 1
                continue
            result.pruned.append(
                PrunedSnapshot(
                    id=locked.id,
                    created_at=locked.created_at.isoformat(),
                    status=locked.status,
                    tables=sorted(locked.copies.values()),
                    size_bytes=locked.size_bytes,
                )
            )
            if dry_run:
                continue
            for copy in sorted(locked.copies.values()):
                if copy.startswith(COPY_PREFIX):  # never drop anything but a snapshot copy
                    store.table_drop(copy)
            locked.delete()
    return result
