"""verify_backup: prove a backup is intact (checksum from storage) and, with a restore test, usable
(restored into a scratch database, every table present with the row count recorded at backup time).

A damaged or missing local copy is reported and the S3 copy verified instead; a backup whose key is
not in the key ring is "key unavailable" (its checksum still checked), never "failed"."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.utils import timezone

from dbops.artifacts.manifest import manifest_save
from dbops.artifacts.pipeline import ByteProgress
from dbops.artifacts.reading import (
    CHECKSUM,
    DUMP,
    READABLE_STATUSES,
    artifact_locate,
    record_decryption_keys,
)
from dbops.artifacts.workdir import work_folder
from dbops.engines import get_connector
from dbops.exceptions import ArtifactWriteError, BackupNotFound, DbopsError, KeyUnavailable, VerificationError
from dbops.models import BackupRecord
from dbops.services.backups.catalog import presence_record

logger = logging.getLogger(__name__)


@dataclass
class VerificationResult:
    backup_record: BackupRecord
    passed: bool
    checksum_ok: bool
    restore_tested: bool = False
    key_unavailable: bool = False
    source: str = ""  # local | s3: the copy that was verified
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. a damaged local copy passed over
    tables_checked: int = 0
    checks: list[str] = field(default_factory=list)  # what was checked, for the one-line summary
    details: dict = field(default_factory=dict)  # kind-specific facts recorded beside the common ones


def backup_latest(*, database: str | None = None, kind: str = BackupRecord.Kind.FULL) -> BackupRecord:
    """The backup `verify_backup --latest` and the weekly verification task verify: the newest
    succeeded one of `kind` (full backups unless asked: not a safety or PITR base backup)."""
    if kind not in BackupRecord.Kind.values:
        raise VerificationError(f"Unknown backup kind {kind!r}; one of {', '.join(BackupRecord.Kind.values)}.")
    records = BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED, kind=kind)
    if database:
        records = records.filter(database_alias=database)
    backup_record = records.order_by("-started_at", "-id").first()
    if backup_record is None:
        of_database = f" of database {database!r}" if database else ""
        raise BackupNotFound(f"No successful backup ({kind}){of_database} to verify.")
    return backup_record


def verification_refusal(backup_record: BackupRecord) -> str:
    """Why this backup cannot be verified at all ("" when it can): checked before queueing a task."""
    if backup_record.status not in READABLE_STATUSES:
        return f"Backup #{backup_record.pk} is {backup_record.status}; nothing to verify."
    return ""


def backup_verify(
    *, backup_record: BackupRecord, restore_test: bool = False, jobs: int = 1, progress: ByteProgress | None = None
) -> VerificationResult:
    """Checks the artifact's SHA-256 from storage (local, else S3) and, with `restore_test`, restores it
    into a scratch database and compares the tables and row counts. Records the outcome on the record.
    `progress(read, written)` follows the decoding before the scratch restore."""
    refusal = verification_refusal(backup_record)
    if refusal:
        raise VerificationError(refusal)
    if backup_record.kind == BackupRecord.Kind.BASE:
        return _base_backup_verify(backup_record, restore_test=restore_test)
    result = VerificationResult(backup_record=backup_record, passed=False, checksum_ok=False, checks=["checksum"])
    with work_folder(purpose="verify") as workdir:
        try:
            connector = get_connector(backup_record.database_alias) if restore_test else None
            if connector is not None and connector.engine != backup_record.engine:
                raise VerificationError(
                    f"Backup #{backup_record.pk} is {backup_record.engine}, but alias "
                    f"{backup_record.database_alias!r} is {connector.engine}: cannot restore-test it here."
                )
            # With a restore test and the key at hand, the copy is decoded in the pass that checks it.
            decode = connector is not None and _key_available(backup_record)
            found = artifact_locate(
                backup_record,
                workdir,
                want=DUMP if decode else CHECKSUM,
                decryption_keys=record_decryption_keys(backup_record) if decode else None,
                progress=progress,
            )
            presence_record(backup_record, found.copies)
            if not found.ok:
                raise found.failure()
            result.checksum_ok, result.source = True, found.place
            result.warnings += found.notes
            record_decryption_keys(backup_record)  # a key missing from the ring: key unavailable, not failed
            if connector is not None:
                decoded = found.decoded
                with connector.scratch_restore(decoded.path, fmt=decoded.fmt, jobs=jobs) as scratch:
                    result.problems += _compare_counts(backup_record.row_counts, scratch.table_counts())
                result.restore_tested = True
                result.tables_checked = len(backup_record.row_counts)
                result.checks.append(f"restore test ({result.tables_checked} tables)")
        except VerificationError:
            raise
        except KeyUnavailable as exc:
            result.key_unavailable = True
            result.problems.append(str(exc))
        except DbopsError as exc:
            result.problems.append(str(exc))
        except Exception as exc:  # a database driver error during the restore test is a failed check too
            result.problems.append(f"restore test failed: {exc}")
    result.passed = result.checksum_ok and not result.problems
    _record(result)
    return result


def _key_available(backup_record: BackupRecord) -> bool:
    try:
        record_decryption_keys(backup_record)
    except KeyUnavailable:
        return False
    return True


def _base_backup_verify(backup_record: BackupRecord, *, restore_test: bool) -> VerificationResult:
    """A PITR base backup: checksum, its backup manifest and, as its restore test, WAL replay to its end."""
    from dbops.services.pitr.verification import pitr_base_backup_verify  # PostgreSQL-only, loaded on demand

    outcome = pitr_base_backup_verify(backup_record=backup_record, restore_test=restore_test)
    checks = ["checksum", "backup manifest"]
    if outcome.restore_tested:
        checks.append(f"WAL replay to {outcome.details['replayed_to_lsn']}")
    result = VerificationResult(
        backup_record=backup_record,
        passed=outcome.checksum_ok and outcome.manifest_ok and (outcome.replay_ok or not restore_test),
        checksum_ok=outcome.checksum_ok,
        restore_tested=outcome.restore_tested,
        problems=outcome.problems,
        checks=checks,
        details={"manifest_verified": outcome.manifest_ok, **outcome.details},
    )
    _record(result)
    return result


def _compare_counts(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    problems = []
    if not expected:
        problems.append("No row counts were recorded at backup time; cannot compare.")
    for table, count in sorted(expected.items()):
        if table not in actual:
            problems.append(f"table {table} is missing after restore")
        elif actual[table] != count:
            problems.append(f"table {table}: {actual[table]} rows after restore, {count} at backup time")
    return problems


def _record(result: VerificationResult) -> None:
    backup_record = result.backup_record
    status = BackupRecord.VerificationStatus
    if result.passed:
        backup_record.verification_status = status.PASSED
    elif result.key_unavailable:
        backup_record.verification_status = status.KEY_UNAVAILABLE
    else:
        backup_record.verification_status = status.FAILED
    backup_record.verified_at = timezone.now()
    backup_record.verification_details = {
        "checksum_ok": result.checksum_ok,
        "restore_tested": result.restore_tested,
        "tables_checked": result.tables_checked,
        "source": result.source,
        "key_unavailable": result.key_unavailable,
        "problems": result.problems,
        "warnings": result.warnings,
        **result.details,
    }
    backup_record.save(update_fields=["verification_status", "verified_at", "verification_details"])
    try:
        manifest_save(backup_record)
    except ArtifactWriteError as exc:  # the outcome is in the catalog; the manifest catches up next time
        logger.warning("verification of backup %s: manifest not updated: %s", backup_record.pk, exc)
        result.warnings.append(f"The manifest could not be updated: {exc}")
