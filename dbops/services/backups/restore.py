"""Restoring: `restore_plan` says what a restore would do (the refusal without --confirm), and
`backup_restore` does it: key, checksum (a damaged local copy gives way to a good S3 copy; a file is
checked against its `.sha256` sidecar) and decode first, then a safety backup, then the connector's
all-or-nothing restore, then the catalog re-synced from the manifests in storage."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Unpack

from django.db import DEFAULT_DB_ALIAS

from dbops.artifacts.manifest import manifest_of
from dbops.artifacts.reading import DUMP, artifact_decode, artifact_locate, file_check, record_decryption_keys
from dbops.artifacts.sidecar import sidecar_path
from dbops.artifacts.workdir import work_folder
from dbops.conf import operations_alias
from dbops.engines import Connector, get_connector
from dbops.exceptions import (
    BackupError,
    BackupNotFound,
    CatalogSyncRefused,
    DbopsError,
    KeyUnavailable,
    RestoreError,
)
from dbops.models import BackupRecord, RestoreRecord
from dbops.services.backups.catalog import SyncResult, catalog_sync, presence_record
from dbops.services.backups.create import ByteProgress, backup_create_locked, safety_backup_spec
from dbops.services.backups.restore_arguments import RestoreArguments, RestoreRequest, restore_arguments
from dbops.services.backups.restore_history import (
    restore_history_carry,
    restore_history_hold,
    restore_record_finish,
    restore_record_start,
    restore_record_warn,
)
from dbops.signals import database_restored, signal_send

logger = logging.getLogger(__name__)


@dataclass
class RestorePlan:
    source: str  # "backup #12 (…)" or the input path
    database_name: str
    engine: str
    tables: list[str]
    jobs: int
    safety_backup: bool
    checksum: str = "verify its checksum"
    artifact_bytes: int | None = None  # what decoding reads: the total a progress bar counts towards

    def describe(self) -> str:
        if self.tables:
            what = f"replace the rows of table(s) {', '.join(self.tables)} in one transaction"
        elif self.engine == "postgresql":
            what = (
                "restore into a fresh database and swap it in by rename; the current database is kept as "
                f"{self.database_name}_pre_restore_<time>"
            )
        else:
            what = "replace the whole database file in one step"
        safety = "take a safety backup first, then " if self.safety_backup else "NOT take a safety backup, then "
        return (
            f"Would restore {self.source} into {self.engine} database {self.database_name}: "
            f"{self.checksum}, {safety}{what}."
        )


@dataclass
class RestoreResult:
    database_name: str
    source: str
    backup_record: BackupRecord | None = None
    safety_backup: BackupRecord | None = None
    previous_database: str = ""
    tables: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # which copy was used and why, what it was checked against
    sync: SyncResult | None = None
    catalog_behind: bool = False  # the catalog is as old as the backup: its re-sync from storage failed
    seconds: float = 0.0
    restore_record: RestoreRecord | None = None


def restore_summary(result: RestoreResult) -> dict:
    """The result in plain values: what a task records and a front presents."""
    return {
        "source": result.source,
        "database": result.database_name,
        "tables": result.tables,
        "safety_backup_id": result.safety_backup.pk if result.safety_backup else None,
        "previous_database": result.previous_database,
        "restore_record_id": result.restore_record.pk if result.restore_record else None,
        "seconds": round(result.seconds, 1),
        "warnings": result.warnings,
        "notes": result.notes,
    }


def _source_label(backup_record: BackupRecord | None, input_path: Path | None) -> str:
    if backup_record is not None:
        return f"backup #{backup_record.pk} ({backup_record.started_at:%Y-%m-%d %H:%M} UTC, {backup_record.format})"
    return str(input_path)


def restore_plan(**request: Unpack[RestoreRequest]) -> RestorePlan:
    """What backup_restore would do, without doing anything."""
    checked = restore_arguments(request)
    backup_record, input_path, verify = checked.backup_record, checked.input_path, checked.verify
    connector = get_connector(checked.database)
    checksum = "verify its checksum"
    if input_path is not None:
        if not input_path.is_file():
            raise RestoreError(f"{input_path} does not exist or is not a file.")
        sidecar = sidecar_path(input_path)
        checksum = f"verify its checksum against {sidecar.name}" if sidecar.exists() else "verify its checksum"
        if not verify:
            checksum = "NOT verify its checksum"
    return RestorePlan(
        checksum=checksum,
        artifact_bytes=input_path.stat().st_size if input_path is not None else backup_record.size_bytes,
        source=_source_label(backup_record, input_path),
        database_name=connector.database_name,
        engine=connector.engine,
        tables=checked.tables,
        jobs=checked.jobs,
        safety_backup=checked.safety_backup,
    )


def restore_refusal(*, backup_record: BackupRecord, database: str = DEFAULT_DB_ALIAS) -> str:
    """Why this backup cannot be restored into `database` at all ("" when it can): shown by the admin
    before anyone types a confirmation, and raised by backup_restore before anything is fetched."""
    # A missing artifact may have come back since the catalog last looked: locating it decides.
    if backup_record.status not in (BackupRecord.Status.SUCCEEDED, BackupRecord.Status.MISSING):
        return f"Backup #{backup_record.pk} is {backup_record.status}; only a succeeded backup can be restored."
    connector = get_connector(database)
    if backup_record.engine and backup_record.engine != connector.engine:
        return (
            f"Backup #{backup_record.pk} is a {backup_record.engine} backup; database {database!r} is "
            f"{connector.engine}. Refusing."
        )
    try:
        record_decryption_keys(backup_record)
    except KeyUnavailable as exc:
        return str(exc)
    return ""


def _compatibility_warnings(connector: Connector, manifest: dict) -> list[str]:
    warnings = []
    source_version = str(manifest.get("server_version") or "")
    current_version = connector.server_version()
    if source_version and _major(source_version) > _major(current_version):
        warnings.append(
            f"The backup comes from a newer server ({source_version}) than this one ({current_version}); "
            "it may not restore cleanly."
        )
    source_migrations = manifest.get("migration_state")
    if source_migrations and source_migrations != connector.migration_state():
        warnings.append(
            "The backup's migration state differs from this database's: run `manage.py migrate` "
            "(or deploy the matching code) after the restore."
        )
    return warnings


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0].split()[0])
    except (ValueError, IndexError):
        return 0


def backup_restore(
    *,
    triggered_by: str = BackupRecord.Trigger.CLI,
    triggered_by_user: str = "",
    progress: ByteProgress | None = None,
    wait: bool = False,
    **request: Unpack[RestoreRequest],
) -> RestoreResult:
    """Restores a managed backup or a backup file into `database`.

    Nothing is touched until the artifact's checksum is proven and it decodes completely; a failed
    restore leaves the database as it was, and its message says so only when it is checked to be so. A
    file is checked against its sidecar (or manifest); without either it is refused (ChecksumUnavailable)
    unless `verify` is off. Raises RestoreError
    (or ChecksumMismatch, ChecksumUnavailable, NotABackupError, EncryptionError, KeyUnavailable,
    BackupLockedError, BackupError when the safety backup fails)."""
    started = time.perf_counter()
    checked = restore_arguments(request)
    connector = get_connector(checked.database)
    source = _source_label(checked.backup_record, checked.input_path)
    result = RestoreResult(database_name=connector.database_name, source=source)
    result.backup_record = checked.backup_record
    restore_record = restore_record_start(
        backup_record=checked.backup_record,
        input_path=checked.input_path,
        tables=checked.tables,
        connector=connector,
        source=source,
        by=triggered_by,
        user=triggered_by_user,
    )
    try:
        _restore(connector, result, checked, triggered_by_user=triggered_by_user, progress=progress, wait=wait)
    except BaseException as exc:
        restore_record_finish(
            restore_record,
            status=RestoreRecord.Status.FAILED,
            started=started,
            error=f"{type(exc).__name__}: {exc}" if not isinstance(exc, DbopsError) else str(exc),
            safety_backup=result.safety_backup,
        )
        raise
    result.seconds = time.perf_counter() - started
    not_recorded = restore_record_finish(
        restore_record,
        status=RestoreRecord.Status.SUCCEEDED,
        started=started,
        safety_backup=result.safety_backup,
        previous_database=result.previous_database,
        warnings=result.warnings,
    )
    result.warnings += [not_recorded] if not_recorded else []
    result.restore_record = restore_record
    receiver_failures = signal_send(database_restored, sender=RestoreRecord, restore_record=restore_record)
    if receiver_failures:
        result.warnings += receiver_failures
        restore_record_warn(restore_record, receiver_failures)
    logger.info("restore of %s into %s done in %.1fs", result.source, result.database_name, result.seconds)
    return result


def _restore(
    connector: Connector,
    result: RestoreResult,
    request: RestoreArguments,
    *,
    triggered_by_user: str,
    progress: ByteProgress | None,
    wait: bool,
) -> None:
    """backup_restore's work, filling `result`: prove and decode the artifact, safety backup, restore."""
    backup_record, database = result.backup_record, connector.alias
    with work_folder(purpose="restore") as workdir:
        if backup_record is not None:
            refusal = restore_refusal(backup_record=backup_record, database=database)
            if refusal:
                raise RestoreError(refusal)
            keys = record_decryption_keys(backup_record)  # a missing key refuses before any download
            # Checked and decoded in one pass (an S3 copy streams: the artifact itself never lands here).
            found = artifact_locate(backup_record, workdir, want=DUMP, decryption_keys=keys, progress=progress)
            presence_record(backup_record, found.copies)
            if not found.ok:
                raise found.failure()
            decoded, manifest = found.decoded, manifest_of(backup_record)
            result.notes += found.notes
        else:
            checked = file_check(request.input_path, verify=request.verify)
            manifest = checked.manifest
            if checked.verified_against:
                result.notes.append(f"Checksum verified against {checked.verified_against}.")
            else:
                result.warnings.append(f"{request.input_path} was not verified against a checksum (as asked).")
            decoded = artifact_decode(request.input_path, workdir, progress=progress)
        if decoded.engine != connector.engine:
            raise RestoreError(
                f"{result.source} holds a {decoded.engine} dump; database {database!r} is {connector.engine}. Refusing."
            )
        result.warnings += _compatibility_warnings(connector, manifest)
        if request.tables:
            available = connector.archive_tables(decoded.path, fmt=decoded.fmt)
            unknown = [t for t in request.tables if t not in available]
            if unknown:
                raise RestoreError(f"Table(s) not in the backup: {', '.join(unknown)}.")

        if request.safety_backup:
            connector.preflight()
        with connector.lock(wait=wait):
            if request.safety_backup:
                result.safety_backup = _safety_backup(connector, result.source, triggered_by_user)
            # Read last, so the history held includes this restore's own running row.
            held_history = restore_history_hold(database_alias=connector.alias)
            try:
                tables = request.tables or None
                outcome = connector.restore(decoded.path, fmt=decoded.fmt, tables=tables, jobs=request.jobs)
            except DbopsError:
                raise
            except Exception as exc:  # not one the engine foresaw, so its state is not known here: say where to look
                raise RestoreError(
                    f"Restore failed unexpectedly: {exc}. Run `python manage.py health_check` to see the state of "
                    f"database {connector.database_name} (it repairs a half-done swap)."
                ) from exc
            result.previous_database = outcome.previous_database
            result.tables = outcome.tables
            # Only when the operations state lives in the restored database (DBOPS["DATABASE"] unset) is
            # the catalog as old as the backup: then bring back every backup storage knows of.
            if connector.alias == operations_alias():
                try:
                    result.sync = catalog_sync()
                except CatalogSyncRefused as exc:  # the restore is done; the catalog stays as restored
                    result.warnings.append(str(exc))
                except Exception as exc:  # noqa: BLE001 - the restore itself is done; say so, and what is left
                    result.catalog_behind = True
                    result.warnings.append(
                        f"The restore is done, but re-syncing the catalog from storage failed ({exc}): backups "
                        "newer than the restored one are missing from the catalog until it is synced again."
                    )
            not_carried = restore_history_carry(held_history)
            if not_carried:
                result.warnings.append(not_carried)


def _safety_backup(connector: Connector, source: str, user: str) -> BackupRecord:
    try:
        spec = safety_backup_spec(fmt=connector.default_format, source=source, user=user)
        return backup_create_locked(connector=connector, spec=spec, progress=None)
    except BackupError as exc:
        raise RestoreError(f"The safety backup failed, so nothing was restored: {exc}") from exc


def backup_for_id(backup_id: int | str) -> BackupRecord:
    """The record with this id, or BackupNotFound."""
    try:
        return BackupRecord.objects.get(pk=int(backup_id))
    except (BackupRecord.DoesNotExist, ValueError, TypeError):
        raise BackupNotFound(f"No backup with id {backup_id!r} (see list_backups).") from None
