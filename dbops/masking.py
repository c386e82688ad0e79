"""Secrets out of messages: driver and client errors can echo connection parameters."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from django.conf import settings

from dbops.conf import secret_masker

MASK = "********"
_STORAGE_SECRET_OPTIONS = ("access_key", "secret_key", "security_token", "password")
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words


def _settings_secrets() -> Iterator[str]:
    for database in settings.DATABASES.values():
        yield str(database.get("PASSWORD") or "")
    for storage in getattr(settings, "STORAGES", {}).values():
        for option in _STORAGE_SECRET_OPTIONS:
            yield str((storage.get("OPTIONS") or {}).get(option) or "")
    for name in ("SECRET_KEY", "EMAIL_HOST_PASSWORD", "BACKUP_ENCRYPTION_KEY", "ANONYMIZATION_SALT"):
        yield str(getattr(settings, name, "") or "")
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        url = getattr(settings, name, None)
        if isinstance(url, str):
            try:
                yield urlsplit(url).password or ""
            except ValueError:
                continue


def mask_secrets(text: str) -> str:
    """`text` with every configured secret replaced by ********: by the project's masker when
    DBOPS["MASK_SECRETS"] names one, else every secret Django's settings hold."""
    masker = secret_masker()
    if masker is not None:
        return masker(text)
    for secret in sorted(set(_settings_secrets()), key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    return text
