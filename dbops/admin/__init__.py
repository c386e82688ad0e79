"""dbops admin, one module per area (the admin engineer extends these)."""

from dbops.admin import retention, scheduling  # noqa: F401  (registers RetentionPolicy, TaskRun)
