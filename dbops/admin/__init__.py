"""dbops admin, one module per area (the admin engineer extends these)."""

from dbops.admin import backups, drills, profiling, restores, retention, scheduling, snapshots  # noqa: F401  (each registers its models)
