"""dbops models, one module per area, re-exported here."""

from dbops.models.backups import BackupRecord

__all__ = ["BackupRecord"]
