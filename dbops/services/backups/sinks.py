"""Where a backup's artifact is written while it is taken: the local atomic writer or, straight to S3,
a multipart upload; and the clean-up of what a failed or killed run left there."""

from __future__ import annotations

import logging

from dbops.artifacts.manifest import manifest_name
from dbops.artifacts.multipart import s3_multipart_writer, s3_uploads_abort_unfinished
from dbops.artifacts.storage import LOCAL, local_artifact_writer, local_storage, s3_key, s3_storage
from dbops.models import BackupRecord

logger = logging.getLogger(__name__)


def place_storage(place: str):
    return local_storage() if place == LOCAL else s3_storage()


def artifact_sink(backup_record: BackupRecord, place: str):
    """Where the pipeline writes: the local atomic writer, or an S3 multipart upload whose id is kept
    on the record while it runs (so a killed run's upload can be found and aborted)."""
    if place == LOCAL:
        return local_artifact_writer(backup_record.storage_name)

    def remember(upload_id: str) -> None:
        backup_record.s3_upload_id = upload_id
        backup_record.save(update_fields=["s3_upload_id"])

    remote = s3_storage()
    return s3_multipart_writer(remote, s3_key(remote, backup_record.storage_name), on_started=remember)


def uploads_abort_unfinished(folder: str) -> list[str]:
    """Aborts the multipart uploads killed runs left in the folder (under the lock, none is live)."""
    remote = s3_storage()
    try:
        aborted, failed = s3_uploads_abort_unfinished(remote, s3_key(remote, folder) + "/")
    except Exception as exc:  # S3 down at the start: the backup itself says so in a moment
        logger.warning("could not list unfinished S3 uploads under %s: %s", folder, exc)
        return []
    for key in aborted:
        logger.warning("aborted the unfinished S3 upload of %s (left by a killed run)", key)
    BackupRecord.objects.exclude(s3_upload_id="").filter(
        storage_name__startswith=f"{folder}/", status=BackupRecord.Status.FAILED
    ).update(s3_upload_id="")
    return [f"Could not abort an unfinished S3 upload: {problem}" for problem in failed]


def artifact_discard(storage_name: str, place: str = LOCAL) -> None:
    """Removes the artifact (and manifest) this run wrote, when what had to follow them failed."""
    storage = place_storage(place)
    for name in (storage_name, manifest_name(storage_name)):
        try:
            storage.delete(name)
        except Exception as exc:  # S3 down now: retention or a sync finds the unrecorded object later
            logger.warning("could not remove %s after a failed backup: %s", name, exc)
