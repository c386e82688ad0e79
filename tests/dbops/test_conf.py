"""What dbops takes from the project (dbops.conf): defaults for the settings a project leaves out, the
project's celery app, and the secret masker (the project's own, or dbops's from Django settings)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from dbops.conf import PROJECT_DEFAULTS, celery_app, project_defaults_apply
from dbops.masking import mask_secrets


def test_a_project_that_sets_none_of_the_dbops_settings_gets_the_defaults(settings, tmp_path):
    for name in ("BACKUP_DIR", "HEALTH_CACHE_SECONDS", "ANONYMIZATION_SALT", "PITR_STORAGE", "BACKUP_NOTIFY_EMAILS"):
        delattr(settings, name)
    settings.BACKUP_ENCRYPTION_KEY = "set-by-the-project"
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {**settings.STORAGES["backups"], "OPTIONS": {"location": tmp_path}},
    }

    applied = project_defaults_apply()

    assert set(applied) == {
        "BACKUP_DIR",
        "HEALTH_CACHE_SECONDS",
        "ANONYMIZATION_SALT",
        "PITR_STORAGE",
        "BACKUP_NOTIFY_EMAILS",
    }
    assert tmp_path == settings.BACKUP_DIR  # where the backups storage writes
    assert (
        PROJECT_DEFAULTS["HEALTH_CACHE_SECONDS"] == settings.HEALTH_CACHE_SECONDS and settings.PITR_STORAGE == "local"
    )
    expected_salt = hmac.new(settings.SECRET_KEY.encode(), b"dbops.anonymization", hashlib.sha256).hexdigest()
    assert expected_salt == settings.ANONYMIZATION_SALT
    assert settings.BACKUP_ENCRYPTION_KEY == "set-by-the-project"  # a set value is never replaced
    settings.BACKUP_NOTIFY_EMAILS.append("a@example.com")
    assert PROJECT_DEFAULTS["BACKUP_NOTIFY_EMAILS"] == []  # each project gets its own copy
    assert project_defaults_apply() == []  # idempotent


def test_the_project_celery_app_or_celerys_current_one(settings):
    from multipult.celery import app as multipult_app

    assert celery_app() is multipult_app  # DBOPS["CELERY_APP"] in multipult.settings
    settings.DBOPS = {**settings.DBOPS, "CELERY_APP": None}
    from celery import current_app

    assert celery_app() is current_app._get_current_object()


@pytest.fixture
def own_masker(settings):
    settings.DBOPS = {**settings.DBOPS, "MASK_SECRETS": None}


def test_dbops_masks_every_secret_django_settings_hold(settings, own_masker):
    database_password = settings.DATABASES["default"]["PASSWORD"]
    assert len(database_password) >= 4  # the test servers' password
    settings.STORAGES = {**settings.STORAGES, "s3x": {"BACKEND": "x", "OPTIONS": {"secret_key": "s3-secret-2"}}}
    settings.CELERY_BROKER_URL = "redis://:broker-pass-3@localhost:6379/0"
    settings.EMAIL_HOST_PASSWORD = "mail-pass-4"

    text = f"{database_password} s3-secret-2 broker-pass-3 mail-pass-4 abc"

    assert mask_secrets(text) == "******** ******** ******** ******** abc"


def test_the_projects_masker_is_used_when_named(settings, monkeypatch):
    # MultiPULT's masker hides every secret variable of its environment (multipult.config).
    monkeypatch.setenv("DB_PASSWORD", "env-only-secret")
    assert mask_secrets("connect failed: env-only-secret") == "connect failed: ********"
