"""dbops admin, one module per area (the admin engineer extends these)."""

from dbops.admin import backups  # noqa: F401  (registers BackupRecord)
