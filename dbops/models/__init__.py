"""dbops models, one module per area, re-exported here."""

from dbops.models.backups import BackupRecord
from dbops.models.retention import RetentionPolicy

__all__ = ["BackupRecord", "RetentionPolicy"]
