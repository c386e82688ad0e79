"""backup_advanced, backup_db and list_backups through call_command, on the real PostgreSQL."""

from __future__ import annotations

import json

import pytest

from dbops.artifacts.pipeline import PLAIN_DUMP_MARKER
from dbops.models import BackupRecord
from tests.commands import command_error, run_command

pytestmark = pytest.mark.django_db(transaction=True)


def test_backup_advanced_then_list_backups_json_newest_first(backup_dir, some_data):
    first = run_command("backup_advanced", "--compress", "gzip", "--tag", "first", "--quiet")
    second = run_command("backup_advanced", "--compress", "--tag", "second")
    assert "succeeded" in first and "succeeded" in second
    assert "\r" not in second  # progress only on a TTY

    listed = json.loads(run_command("list_backups", "--json"))["backups"]
    assert [item["tag"] for item in listed] == ["second", "first"]
    assert [item["compression"] for item in listed] == ["zstd", "gzip"]
    assert all(item["status"] == "succeeded" and len(item["sha256"]) == 64 for item in listed)

    table = run_command("list_backups")
    assert "second" in table and "first" in table


def test_list_backups_status_filter(backup_dir, some_data):
    run_command("backup_advanced", "--quiet")
    BackupRecord.objects.create(
        started_at="2026-01-01T00:00:00Z", status="failed", engine="postgresql", database_name="x", format="custom"
    )
    failed = json.loads(run_command("list_backups", "--json", "--status", "failed"))["backups"]
    assert [item["status"] for item in failed] == ["failed"]
    both = json.loads(run_command("list_backups", "--json", "--status", "failed", "--status", "succeeded"))
    assert len(both["backups"]) == both["total"] == 2


def test_list_backups_empty():
    assert "No backups." in run_command("list_backups")
    assert json.loads(run_command("list_backups", "--json")) == {"total": 0, "limit": 50, "backups": []}


def test_backup_db_output_writes_plain_sql(tmp_path, some_data):
    output = tmp_path / "backup.sql"
    text = run_command("backup_db", "--output", str(output))
    assert f"Wrote {output}" in text
    assert PLAIN_DUMP_MARKER in output.read_bytes()[:200]
    assert BackupRecord.objects.count() == 0  # not a catalog backup


def test_backup_db_refuses_to_overwrite(tmp_path, some_data):
    output = tmp_path / "backup.sql"
    output.write_text("precious")
    command_error("backup_db", "--output", str(output), match="already exists")
    assert output.read_text() == "precious"


def test_backup_db_into_unwritable_folder(unwritable_dir, some_data):
    before = sorted(p.name for p in unwritable_dir.iterdir())
    command_error("backup_db", "--output", str(unwritable_dir / "b.sql"), match="Cannot write")
    assert sorted(p.name for p in unwritable_dir.iterdir()) == before


def test_backup_advanced_into_unwritable_backup_dir(settings, unwritable_dir, some_data):
    storages = dict(settings.STORAGES)
    location = unwritable_dir / "multipult-backups"
    storages["backups"] = {**storages["backups"], "OPTIONS": {**storages["backups"]["OPTIONS"], "location": location}}
    settings.STORAGES = storages
    command_error("backup_advanced", "--quiet", match="not writable")
    assert not location.exists()
    # The attempt is on record as failed, with the reason.
    record = BackupRecord.objects.get()
    assert record.status == "failed" and "not writable" in record.error
