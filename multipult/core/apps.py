from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "multipult.core"
    label = "core"
    verbose_name = "MultiPULT domain"

    def ready(self) -> None:
        from dbops.signals import backup_deleted, database_restored
        from multipult.core import audit, checks  # noqa: F401  (checks registers the system checks)

        backup_deleted.connect(audit.audit_backup_deleted, dispatch_uid="core.audit.backup_deleted")
        database_restored.connect(audit.audit_database_restored, dispatch_uid="core.audit.database_restored")
