"""The backup, restore and WAL commands run with multipult.settings_ops (no web-only apps): chosen by
manage.py and cli.py, and as operators run them the whole cycle works against the real PostgreSQL."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection

from dbops.models import BackupRecord
from multipult.core.models import DictionaryEntry, Role
from multipult.settings_profiles import DEFAULT_SETTINGS, OPS_COMMANDS, OPS_SETTINGS, settings_module_for
from tests.dbops.commandline import child_database_env, run_manage, run_script

# Imported by the full settings only (admin, GraphQL, the scheduler's models and celery itself).
WEB_ONLY_MODULES = re.compile(r"^(graphene|graphene_django|graphql|django_celery_beat|celery|django\.contrib\.admin)\b")


@pytest.mark.parametrize(
    ("command", "current", "expected"),
    [
        ("backup_advanced", None, OPS_SETTINGS),
        ("restore-db", None, OPS_SETTINGS),  # cli.py's hyphenated spelling
        ("archive_wal", DEFAULT_SETTINGS, OPS_SETTINGS),  # pytest and docker-compose set the default
        ("runserver", None, DEFAULT_SETTINGS),
        ("migrate", OPS_SETTINGS, DEFAULT_SETTINGS),  # inherited from a parent ops command
        ("", None, DEFAULT_SETTINGS),
        ("backup_advanced", "team.settings.production", "team.settings.production"),  # a team's own module wins
    ],
)
def test_settings_module_for_each_command(command, current, expected):
    assert settings_module_for(command, current) == expected


def test_ops_settings_leave_out_only_the_web_only_apps():
    from multipult import settings as full_settings
    from multipult import settings_ops

    assert {"django.contrib.auth", "django.contrib.contenttypes", "multipult.core", "dbops"} <= set(
        settings_ops.INSTALLED_APPS
    )
    left_out = set(full_settings.INSTALLED_APPS) - set(settings_ops.INSTALLED_APPS)
    assert left_out and left_out <= set(settings_ops.WEB_ONLY_APPS)
    assert settings_ops.DATABASES == full_settings.DATABASES and settings_ops.STORAGES == full_settings.STORAGES


def imported_modules(stderr: str) -> set[str]:
    """Module names from `python -X importtime` output."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def manage_importtime(*args: str, env: dict) -> tuple[object, set[str]]:
    result = run_script("-X", "importtime", "manage.py", *args, env={**env, "LOG_LEVEL": "WARNING"})
    return result, imported_modules(result.stderr)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drop_pre_restore_databases")
def test_backup_verify_and_restore_as_an_operator_runs_them(tmp_path, some_data):
    env = {**child_database_env(), "BACKUP_DIR": str(tmp_path), "S3_BACKUP_BUCKET": None}

    backup, modules = manage_importtime("backup_advanced", "--compress", "zstd", "--tag", "ops", env=env)
    assert backup.returncode == 0, backup.stderr[-2000:]
    assert "dbops.services.backups.create" in modules
    assert not {m for m in modules if WEB_ONLY_MODULES.match(m)}
    record = BackupRecord.objects.get(tag="ops")  # the full-settings process sees what the ops process wrote
    assert record.status == "succeeded" and record.row_counts["core_dictionaryentry"] == 50
    assert record.tool_version.startswith("pg_dump (PostgreSQL)")

    listed = run_manage("list_backups", "--json", env=env)
    assert [item["id"] for item in json.loads(listed.stdout)["backups"]] == [record.pk]

    verify, modules = manage_importtime("verify_backup", str(record.pk), "--restore-test", env=env)
    assert verify.returncode == 0, verify.stderr[-2000:]
    assert not {m for m in modules if WEB_ONLY_MODULES.match(m)}
    record.refresh_from_db()
    assert record.verification_status == "passed"

    DictionaryEntry.objects.all().delete()
    Role.objects.create(name="made-after-the-backup")
    connection.close()  # the restore ends other sessions on the database it swaps out
    restore = run_manage("restore_db", "--backup-id", str(record.pk), "--confirm", "--no-safety-backup", env=env)
    assert restore.returncode == 0, restore.stderr[-2000:]
    assert DictionaryEntry.objects.count() == 50
    assert not Role.objects.filter(name="made-after-the-backup").exists()


@pytest.mark.django_db(transaction=True)
def test_other_commands_keep_the_full_settings(tmp_path):
    env = {**child_database_env(), "BACKUP_DIR": str(tmp_path)}
    result, modules = manage_importtime("check", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    for package in ("graphene_django.", "django_celery_beat.", "django.contrib.admin."):
        assert any(module.startswith(package) for module in modules), package


def test_every_ops_command_exists_in_dbops():
    from django.core.management import get_commands

    assert {name: get_commands().get(name) for name in OPS_COMMANDS} == dict.fromkeys(OPS_COMMANDS, "dbops")
