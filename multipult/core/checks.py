"""MultiPULT's own system checks (the environment is MultiPULT's; dbops checks only Django settings)."""

from __future__ import annotations

from django.core.checks import Warning, register


@register()
def check_s3_environment(app_configs, **kwargs):
    from multipult.settings import CONFIG

    if (CONFIG["AWS_ACCESS_KEY_ID"] or CONFIG["S3_ENDPOINT_URL"]) and not CONFIG["S3_BACKUP_BUCKET"]:
        return [
            Warning(
                "S3 credentials or endpoint are set but S3_BACKUP_BUCKET is not; uploads are disabled.",
                hint="Set S3_BACKUP_BUCKET to enable --upload-s3.",
                id="core.W001",
            )
        ]
    return []
