"""Pinning: a pinned backup is never deleted (retention keeps it, backup_delete refuses it) until unpinned."""

from __future__ import annotations

import logging

from django.db import transaction

from dbops.conf import operations_alias
from dbops.exceptions import BackupError
from dbops.models import BackupRecord

logger = logging.getLogger(__name__)


def backup_pin(*, backup_record: BackupRecord, pinned: bool = True) -> BackupRecord:
    """Pins (or unpins) one backup; a deleted backup has nothing left to pin."""
    if pinned and backup_record.status == BackupRecord.Status.DELETED:
        raise BackupError(f"Backup #{backup_record.pk} is deleted: there is nothing left to pin.")
    with transaction.atomic(using=operations_alias()):
        BackupRecord.objects.filter(pk=backup_record.pk).update(pinned=pinned)
    backup_record.pinned = pinned
    logger.info("backup %s %s", backup_record.pk, "pinned" if pinned else "unpinned")
    return backup_record


def backup_pinned_refusal(backup_record: BackupRecord) -> str:
    """Why a backup must not be deleted now ("" when it may be)."""
    if backup_record.pinned:
        return f"Backup #{backup_record.pk} is pinned: unpin it before deleting it."
    return ""
