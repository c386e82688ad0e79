"""dbops models, one module per area, re-exported here."""

from dbops.models.backups import BackupRecord, RestoreRecord
from dbops.models.datamigration import DataTransferRun, Snapshot
from dbops.models.pitr import PitrBaseBackup, PitrDrill
from dbops.models.profiling import SlowQuery
from dbops.models.retention import RetentionPolicy
from dbops.models.scheduling import TaskRun

__all__ = [
    "BackupRecord",
    "DataTransferRun",
    "PitrBaseBackup",
    "PitrDrill",
    "RestoreRecord",
    "RetentionPolicy",
    "SlowQuery",
    "Snapshot",
    "TaskRun",
]
