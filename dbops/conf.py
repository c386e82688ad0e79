"""dbops's own settings: one `DBOPS` dict in the project's settings module, read here with defaults,
so a project plugs dbops in with INSTALLED_APPS and settings alone.

    DBOPS = {
        "DATABASE": "dbops",  # alias of the database that holds the operations state
        "ENTITIES": [  # what export_data / import_data / snapshots move, in dependency order
            {"name": "authors", "model": "library.Author", "since_field": "created_at",
             "anonymize": {"name": "last_name"}},
            {"name": "books", "model": "library.Book", "parent": ["author", "authors"]},
        ],
        "CELERY_APP": "myproject.celery.app",  # unset: celery's current app
    }

An entity declaration (see dbops.services.datamigration.entities) has: `name`, `model` ("app_label.Model"),
and optionally `since_field` (what --since filters on), `companions` (entities exported with it),
`parent` ([foreign key field, parent entity]), `exclude` (fields never exported, e.g. a password) and
`anonymize` ({field: strategy or "keep"}). Apps may also call `entity_register(...)` in AppConfig.ready().
The `dbops.E1xx` system checks validate all of it at start-up.
"""

from __future__ import annotations

import copy
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    # The operations state (catalog, task runs, schedules, policies, snapshots...) lives in this alias,
    # apart from the data a restore replaces. Unset: the default database (a restore then rewinds it).
    "DATABASE": None,
    # The data-migration entities (dicts, see the module docstring), in dependency order.
    "ENTITIES": [],
    # Dotted path of the project's celery app; None: celery's current app (the one the project made).
    "CELERY_APP": None,
    # Dotted path of a callable text -> text that hides the project's secrets in messages; None: dbops
    # masks the secrets it can see in Django's settings (database passwords, storage keys, ...).
    "MASK_SECRETS": None,
    # Path suffixes of project files that are plumbing, not call sites, for the query profiler.
    "PROFILING_SKIP_FILES": (),
    # The profiling middleware hands a request's log records (summary, N+1 and slow-query warnings) to a
    # thread of its own, so the response does not wait for them to be built and written. False: inline.
    "PROFILING_LOG_IN_BACKGROUND": True,
    # The interpreter PostgreSQL runs archive_wal / restore_wal with (the server's OS user must be able
    # to run it, e.g. when this one is under a private home). Unset: the interpreter running dbops.
    "PITR_PYTHON": None,
    # Straight-to-S3 backups (dbops.artifacts.multipart): the size of each multipart part (S3 wants at
    # least 5 MiB but for the last), the attempts per part, and the timeout of each S3 request.
    "S3_PART_SIZE": 8 << 20,  # 4 parts in memory stay within the 150 MB budget of a straight-to-S3 backup
    "S3_PART_ATTEMPTS": 5,
    "S3_TIMEOUT_SECONDS": 60.0,
    # Aliases of settings.STORAGES that receive a copy of every managed backup (another bucket, another
    # folder), each read back and checked against the backup's SHA-256 (dbops.services.backups.copies).
    "COPY_TARGETS": (),
    # The largest file the admin's import page accepts (bigger ones: `manage.py import_data`).
    "IMPORT_UPLOAD_MAX_BYTES": 256 << 20,
    # Where the admin's import page keeps an upload between its preview and its confirmation (a folder only
    # this OS user may enter). None: dbops-admin-imports-<uid> in the system's temporary folder.
    "IMPORT_UPLOAD_DIR": None,
}


# Top-level settings dbops reads, and what a project that sets none of them gets (applied once, in
# DbopsConfig.ready, so every reader sees the same value). Callables compute a default from other settings.
PROJECT_DEFAULTS: dict[str, Any] = {
    "BACKUP_DIR": lambda: (
        (settings.STORAGES.get("backups", {}).get("OPTIONS") or {}).get("location")
        or Path(getattr(settings, "BASE_DIR", ".")) / "backups"
    ),
    "S3_BACKUP_BUCKET": lambda: (settings.STORAGES.get("backups_s3", {}).get("OPTIONS") or {}).get("bucket_name"),
    "BACKUP_ENCRYPTION_KEY": None,
    "PITR_STORAGE": "local",  # "local" (STORAGES["backups"]) or "s3" (STORAGES["backups_s3"])
    "ANONYMIZATION_SALT": lambda: hmac.new(settings.SECRET_KEY.encode(), b"dbops.anonymization", "sha256").hexdigest(),
    "BACKUP_NOTIFY_EMAILS": [],
    "BACKUP_LOCAL_COPY": True,  # scheduled backups that go to S3 keep a local copy too
    "QUERY_PROFILING_ENABLED": False,
    "SLOW_QUERY_THRESHOLD_MS": 100.0,
    "LOG_ALL_QUERIES": False,
    "N_PLUS_ONE_THRESHOLD": 5,
    "N_PLUS_ONE_RAISE": False,  # True in test suites: an N+1 raises NPlusOneDetected (dbops.pytest_plugin)
    "N_PLUS_ONE_ALLOW": (),  # fnmatch patterns of call sites, GraphQL field paths or statements repeated on purpose
    "BACKUP_MAX_AGE_HOURS": 26.0,
    "VERIFY_MAX_AGE_HOURS": 192.0,
    "HEALTH_MIN_FREE_DISK_MB": 1024,
    "HEALTH_TIMEOUT_SECONDS": 2.0,
    "HEALTH_CACHE_SECONDS": 5.0,
}


def project_defaults_apply() -> list[str]:
    """Sets every PROJECT_DEFAULTS setting the project left out; returns their names."""
    applied = []
    for name, default in PROJECT_DEFAULTS.items():
        if not hasattr(settings, name):
            setattr(settings, name, default() if callable(default) else copy.copy(default))
            applied.append(name)
    return applied


def dbops_setting(name: str) -> Any:
    if name not in DEFAULTS:
        raise KeyError(f"unknown DBOPS setting {name!r}")
    declared = getattr(settings, "DBOPS", {})
    return (declared if isinstance(declared, dict) else {}).get(name, DEFAULTS[name])  # dbops.E100 says if not


def operations_alias() -> str:
    """The database alias of the operations state."""
    return dbops_setting("DATABASE") or DEFAULT_DB_ALIAS


def celery_app():
    """The project's celery app: DBOPS["CELERY_APP"] when set (imported, so it exists before tasks bind to
    it), else celery's current app."""
    path = dbops_setting("CELERY_APP")
    if path:
        return import_string(path)
    from celery import current_app

    return current_app._get_current_object()


def secret_masker() -> Callable[[str], str] | None:
    """The project's secret masker (DBOPS["MASK_SECRETS"]), or None for dbops's own."""
    path = dbops_setting("MASK_SECRETS")
    return import_string(path) if path else None
