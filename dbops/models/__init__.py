"""dbops models, one module per area, re-exported here."""

from dbops.models.backups import BackupRecord
from dbops.models.datamigration import DataTransferRun, Snapshot

__all__ = ["BackupRecord", "DataTransferRun", "Snapshot"]
