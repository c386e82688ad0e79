"""dbops models, one module per area, re-exported here."""

from dbops.models.backups import BackupRecord
from dbops.models.pitr import PitrBaseBackup

__all__ = ["BackupRecord", "PitrBaseBackup"]
