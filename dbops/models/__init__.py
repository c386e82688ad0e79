"""dbops models, one module per area, re-exported here."""

from dbops.models.backups import BackupRecord
from dbops.models.pitr import PitrBaseBackup
from dbops.models.retention import RetentionPolicy
from dbops.models.scheduling import TaskRun

__all__ = ["BackupRecord", "PitrBaseBackup", "RetentionPolicy", "TaskRun"]
