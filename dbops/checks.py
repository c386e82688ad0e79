"""System checks with stable ids (run by `manage.py check` and before every command)."""

from __future__ import annotations

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
def check_s3_settings(app_configs, **kwargs):
    from multipult.settings import CONFIG

    bucket = CONFIG["S3_BACKUP_BUCKET"]
    key_id, secret = CONFIG["AWS_ACCESS_KEY_ID"], CONFIG["AWS_SECRET_ACCESS_KEY"]
    if bool(key_id) != bool(secret):
        return [
            Warning(
                "Only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set.",
                hint="Set both, or neither to use the default AWS credential chain.",
                id="dbops.W001",
            )
        ]
    if (key_id or CONFIG["S3_ENDPOINT_URL"]) and not bucket:
        return [
            Warning(
                "S3 credentials or endpoint are set but S3_BACKUP_BUCKET is not; uploads are disabled.",
                hint="Set S3_BACKUP_BUCKET to enable --upload-s3.",
                id="dbops.W002",
            )
        ]
    return []


@register()
def check_pitr_settings(app_configs, **kwargs):
    problems = []
    if settings.PITR_STORAGE == "s3" and "backups_s3" not in settings.STORAGES:
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
