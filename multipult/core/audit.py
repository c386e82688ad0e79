"""MultiPULT's audit log of database operations: receivers of dbops's signals (connected in CoreConfig.ready)."""

from __future__ import annotations

from multipult.core.models import AuditLog


def audit_backup_deleted(sender, *, backup_record, reason: str, removed: list[str], deleted_at, **kwargs) -> None:
    AuditLog.objects.create(
        action=AuditLog.Action.DELETE,
        entity_type="dbops.BackupRecord",
        entity_id=backup_record.pk,
        timestamp=deleted_at,
        changes={"reason": reason, "removed": removed},
    )


def audit_database_restored(sender, *, restore_record, **kwargs) -> None:
    # Sent after the restore: this entry lands in the restored database.
    AuditLog.objects.create(
        action=AuditLog.Action.RESTORE,
        entity_type="dbops.BackupRecord",
        entity_id=restore_record.backup_id,
        timestamp=restore_record.finished_at,
        changes={
            "source": restore_record.source,
            "database": restore_record.database_name,
            "tables": restore_record.tables,
            "previous_database": restore_record.previous_database,
            "safety_backup": restore_record.safety_backup_id,
            "triggered_by": restore_record.triggered_by,
            "by": restore_record.triggered_by_user,
        },
    )
