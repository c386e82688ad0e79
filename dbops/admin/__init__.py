"""dbops admin, one module per area (the admin engineer extends these)."""

from dbops.admin import backups, retention, scheduling, snapshots  # noqa: F401  (each module registers its models)
