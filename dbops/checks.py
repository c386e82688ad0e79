"""System checks with stable ids (run by `manage.py check` and before every command)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS

from dbops.engines import get_connector
from dbops.exceptions import ConfigurationError


def _missing_tools(purpose: str) -> list[str]:
    """The programs the default database's engine needs for `purpose` and cannot find."""
    try:
        return get_connector(DEFAULT_DB_ALIAS).missing_tools(purpose)
    except ConfigurationError:  # an engine dbops has no connector for: nothing it could run anyway
        return []


@register(Tags.database, deploy=False)
def check_postgres_client_tools(app_configs, **kwargs):
    missing = _missing_tools("backup")
    if not missing:
        return []
    return [
        Error(
            f"PostgreSQL client programs not found: {', '.join(missing)}.",
            hint="Install the PostgreSQL client package matching the server's major version (postgresql-client).",
            id="dbops.E001",
        )
    ]


@register()
def check_backup_storage(app_configs, **kwargs):
    if "backups" in settings.STORAGES:
        return []
    return [
        Error(
            "STORAGES has no 'backups' storage: backups have nowhere to go.",
            hint="Add STORAGES['backups'], e.g. a FileSystemStorage with OPTIONS {'location': BACKUP_DIR}.",
            id="dbops.E110",
        )
    ]


@register()
def check_s3_settings(app_configs, **kwargs):
    storage = settings.STORAGES.get("backups_s3")
    if not storage:
        return []
    options = storage.get("OPTIONS") or {}
    if bool(options.get("access_key")) != bool(options.get("secret_key")):
        return [
            Warning(
                "STORAGES['backups_s3'] has only one of access_key and secret_key.",
                hint="Set both (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or neither to use the default AWS "
                "credential chain.",
                id="dbops.W001",
            )
        ]
    if not options.get("bucket_name"):
        return [
            Warning(
                "STORAGES['backups_s3'] names no bucket_name; uploads to S3 will fail.",
                hint="Set its bucket_name (S3_BACKUP_BUCKET), or remove the storage to disable S3.",
                id="dbops.W002",
            )
        ]
    return []


@register()
def check_dbops_settings(app_configs, **kwargs):
    """DBOPS itself: a dict of known keys whose dotted paths import (dbops.E100, dbops.E109)."""
    from django.utils.module_loading import import_string

    from dbops.conf import DEFAULTS

    declared = getattr(settings, "DBOPS", {})
    if not isinstance(declared, dict):
        return [Error(f"DBOPS must be a dict, not {type(declared).__name__}.", id="dbops.E100")]
    problems = []
    unknown = sorted(set(declared) - set(DEFAULTS))
    if unknown:
        problems.append(
            Error(
                f"Unknown DBOPS setting(s): {', '.join(unknown)}.",
                hint=f"Known: {', '.join(DEFAULTS)} (see dbops/conf.py).",
                id="dbops.E100",
            )
        )
    for name in ("CELERY_APP", "MASK_SECRETS"):
        path = declared.get(name)
        if path is None:
            continue
        try:
            import_string(path)
        except (ImportError, TypeError, ValueError) as exc:
            problems.append(Error(f"DBOPS[{name!r}] = {path!r} cannot be imported: {exc}", id="dbops.E109"))
    return problems


@register()
def check_entities(app_configs, **kwargs):
    """The data-migration entity declarations (DBOPS['ENTITIES'], entity_register): dbops.E101-E108, and
    fields import_data could not read back (dbops.E111)."""
    from dbops.services.datamigration.entities import ENTITIES
    from dbops.services.datamigration.import_fields import unreadable_fields

    problems = ENTITIES.problems()
    if problems:
        return [Error(f"DBOPS['ENTITIES']: {problem.message}", id=problem.check_id) for problem in problems]
    return [
        Error(
            f"DBOPS['ENTITIES']: entity {entity.name!r} has fields import_data cannot read: {', '.join(unreadable)}.",
            hint="Exclude them (with a default), or leave the entity out.",
            id="dbops.E111",
        )
        for entity in ENTITIES.values()
        if (unreadable := unreadable_fields(entity))
    ]


@register()
def check_pitr_settings(app_configs, **kwargs):
    problems = []
    if getattr(settings, "PITR_STORAGE", "local") == "s3" and "backups_s3" not in settings.STORAGES:
        problems.append(
            Warning(
                "PITR_STORAGE=s3 but S3_BACKUP_BUCKET is not set: archive_wal and pitr base-backup will fail.",
                hint="Set S3_BACKUP_BUCKET (and the S3 credentials), or PITR_STORAGE=local.",
                id="dbops.W801",
            )
        )
    missing = _missing_tools("pitr")
    if missing:
        problems.append(
            Warning(
                f"{', '.join(missing)} not found: `pitr base-backup` cannot run.",
                hint="Install the PostgreSQL client tools matching the server's major version.",
                id="dbops.W802",
            )
        )
    return problems


@register()
def check_n_plus_one_allow(app_configs, **kwargs):
    """N_PLUS_ONE_ALLOW patterns that can never match: not a string, or a call site in a file that is not there
    (a misspelt or moved path allows nothing, and the N+1 it was meant for fails again)."""
    problems = []
    root = Path(settings.BASE_DIR)
    for pattern in getattr(settings, "N_PLUS_ONE_ALLOW", ()):
        if not isinstance(pattern, str):
            problems.append(Error(f"N_PLUS_ONE_ALLOW holds {pattern!r}, not a pattern string.", id="dbops.E901"))
            continue
        path = pattern.split(":", 1)[0]
        if path.endswith(".py") and not any(char in path for char in "*?[") and not (root / path).is_file():
            problems.append(
                Warning(
                    f"N_PLUS_ONE_ALLOW pattern {pattern!r} names {path}, which is not a file of the project.",
                    hint="Call sites are paths from BASE_DIR (dbops/services/x.py:function:*): correct or remove it.",
                    id="dbops.W901",
                )
            )
    return problems
