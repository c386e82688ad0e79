"""Copies of every managed backup to further storages (DBOPS["COPY_TARGETS"]: aliases of
settings.STORAGES, e.g. another bucket or an off-site folder), each proven by its SHA-256 when read
back (dbops.artifacts.copies); the outcome of each is kept on the record."""

from __future__ import annotations

import logging

from dbops.artifacts.copies import artifact_copy_verified, copy_target_storages
from dbops.artifacts.manifest import manifest_of
from dbops.artifacts.storage import local_path, storage_label
from dbops.exceptions import UploadError
from dbops.models import BackupRecord

logger = logging.getLogger(__name__)

VERIFIED = "verified"


def backup_copies_make(*, backup_record: BackupRecord) -> None:
    """Copies the record's local artifact to every copy target and records each outcome on the record.
    Raises UploadError (carrying `.backup_record`) naming the copies that failed; the others stand."""
    targets = copy_target_storages()
    if not targets:
        return
    source = local_path(backup_record.storage_name) if backup_record.location else None
    failures = []
    for alias, storage in targets:
        if source is None:  # straight to S3: nothing here to copy from
            backup_record.copies[alias] = "not copied: the backup has no local artifact"
            failures.append(f"{storage_label(storage)}: not copied (the backup has no local artifact)")
            continue
        try:
            artifact_copy_verified(
                storage,
                backup_record.storage_name,
                source,
                sha256=backup_record.sha256,
                size=backup_record.size_bytes,
                manifest=manifest_of(backup_record),
            )
        except Exception as exc:  # storages raise many types; each means "no good copy there"
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            backup_record.copies[alias] = why
            failures.append(f"{storage_label(storage)}: {why}")
            logger.warning("copy of backup %s to %s failed: %s", backup_record.pk, alias, why)
        else:
            backup_record.copies[alias] = VERIFIED
    backup_record.save(update_fields=["copies"])
    if failures:
        error = UploadError(f"Backup #{backup_record.pk} succeeded, but a copy failed: {'; '.join(failures)}")
        error.backup_record = backup_record
        raise error
