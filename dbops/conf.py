"""dbops's own settings: one `DBOPS` dict in the project's settings module, read here with defaults,
so a project plugs dbops in with INSTALLED_APPS and settings alone.

    DBOPS = {
        "DATABASE": "dbops",  # alias of the database that holds the operations state
    }
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

DEFAULTS: dict[str, Any] = {
    # The operations state (catalog, task runs, schedules, policies, snapshots...) lives in this alias,
    # apart from the data a restore replaces. Unset: the default database (a restore then rewinds it).
    "DATABASE": None,
    # The interpreter PostgreSQL runs archive_wal / restore_wal with (the server's OS user must be able
    # to run it, e.g. when this one is under a private home). Unset: the interpreter running dbops.
    "PITR_PYTHON": None,
}


def dbops_setting(name: str) -> Any:
    if name not in DEFAULTS:
        raise KeyError(f"unknown DBOPS setting {name!r}")
    return getattr(settings, "DBOPS", {}).get(name, DEFAULTS[name])


def operations_alias() -> str:
    """The database alias of the operations state."""
    return dbops_setting("DATABASE") or DEFAULT_DB_ALIAS
