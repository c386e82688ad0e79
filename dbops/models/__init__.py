"""dbops models, one module per area, re-exported here."""

from dbops.models.backups import BackupRecord
from dbops.models.profiling import SlowQuery

__all__ = ["BackupRecord", "SlowQuery"]
