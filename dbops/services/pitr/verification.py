"""Proving a PITR base backup works before it is needed: its SHA-256 while unpacking it into a scratch
folder, checked against its backup_manifest (every file's checksum, and its WAL parsed), and
as the restore test, WAL replay in a scratch server started on the unpacked backup, with our
restore_wal as restore_command, until it is consistent (the backup's end LSN). `backup_verify`
records the outcome on the BackupRecord like any other verification."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from dbops.engines.postgresql.scratch_cluster import (
    basebackup_manifest_verify,
    scratch_recovery_run,
    scratch_workspace,
)
from dbops.engines.postgresql.server import pitr_restore_command
from dbops.exceptions import PitrError, VerificationError
from dbops.models import BackupRecord, PitrBaseBackup
from dbops.services.pitr.recovery import base_backup_unpack
from dbops.services.pitr.wal_archive import CHUNK, pitr_storage

REPLAY_TIMEOUT = 1800.0  # seconds for the scratch server to replay to the backup's end


@dataclass
class BaseBackupVerification:
    checksum_ok: bool = False
    manifest_ok: bool = False  # every file matched the backup manifest
    replay_ok: bool = False  # the scratch server reached the backup's end and answered queries
    restore_tested: bool = False
    problems: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def pitr_base_backup_verify(
    *, backup_record: BackupRecord, restore_test: bool = False, timeout: float = REPLAY_TIMEOUT
) -> BaseBackupVerification:
    """Checksum and backup manifest; with `restore_test`, WAL replay in a scratch server too. Every
    check that fails adds a problem; nothing outside a temporary folder is written."""
    try:
        pitr = backup_record.pitr
    except PitrBaseBackup.DoesNotExist:
        raise VerificationError(f"Backup #{backup_record.pk} is a base backup without its PITR facts.") from None
    _kind, backend = pitr_storage(pitr.storage)
    result = BaseBackupVerification()
    with scratch_workspace() as workspace:
        data_dir = workspace / "data"
        data_dir.mkdir(mode=0o700)
        try:
            base_backup_unpack(backend, backup_record, data_dir, None)
        except PitrError as exc:
            result.problems.append(str(exc))
            return result
        result.checksum_ok = True
        manifest_path = workspace / "backup_manifest"
        manifest_name = backup_record.storage_name.rsplit("/", 1)[0] + "/backup_manifest"
        if not backend.exists(manifest_name):
            result.problems.append(f"Base backup #{backup_record.pk}: its backup_manifest is missing from storage.")
            return result
        with backend.open(manifest_name, "rb") as stored, manifest_path.open("wb") as local:
            while chunk := stored.read(CHUNK):
                local.write(chunk)
        result.problems += basebackup_manifest_verify(data_dir, manifest_path=manifest_path)
        result.manifest_ok = not result.problems
        if not (restore_test and result.manifest_ok):
            return result
        restore_command = pitr_restore_command(cluster_id=pitr.cluster_id, storage=pitr.storage)
        try:
            recovery = scratch_recovery_run(
                data_dir,
                restore_command=restore_command,
                end_lsn=pitr.end_lsn,
                database=backup_record.database_name or "postgres",
                users=[_alias_user(backup_record.database_alias), "postgres"],
                timeout=timeout,
            )
        except PitrError as exc:
            result.problems.append(f"WAL replay: {exc}")
            return result
    result.restore_tested = True
    result.details = {
        "replayed_to_lsn": recovery.replay_lsn,
        "end_lsn": pitr.end_lsn,
        "wal_restored_from_archive": recovery.archive_segments_restored,
        "tables_in_database": recovery.database_tables,
    }
    if not recovery.reached_end:
        result.problems.append(f"WAL replay stopped at {recovery.replay_lsn}, before the backup's end {pitr.end_lsn}.")
    result.replay_ok = recovery.reached_end
    return result


def _alias_user(alias: str) -> str:
    return (settings.DATABASES.get(alias) or {}).get("USER") or "postgres"
