"""verify_backup on the real PostgreSQL: checksum from storage, restore test into a scratch database."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection

from dbops.models import BackupRecord
from dbops.services.backups.create import backup_create
from dbops.services.backups.verify import backup_verify
from tests.commands import command_error, on_a_terminal, run_command

pytestmark = pytest.mark.django_db(transaction=True)


def databases_like(pattern: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [pattern])
        return [row[0] for row in cursor.fetchall()]


def test_verify_latest_with_restore_test_records_the_result(backup_dir, some_data):
    backup_create(tag="old")
    newest = backup_create(tag="new")
    output = run_command("verify_backup", "--latest", "--restore-test")
    assert f"Backup #{newest.pk} verified" in output and "restore test" in output
    newest.refresh_from_db()
    assert newest.verification_status == "passed" and newest.verified_at is not None
    assert newest.verification_details["restore_tested"] is True
    assert newest.verification_details["tables_checked"] == len(newest.row_counts)
    assert databases_like(f"{connection.settings_dict['NAME']}_verify_%") == []  # scratch database dropped


def test_verify_detects_a_flipped_bit_and_records_failure(backup_dir, some_data):
    backup_record = backup_create()
    artifact = Path(backup_record.location)
    data = bytearray(artifact.read_bytes())
    data[100] ^= 0x80
    artifact.write_bytes(bytes(data))
    command_error("verify_backup", str(backup_record.pk), match="FAILED verification")
    backup_record.refresh_from_db()
    assert backup_record.verification_status == "failed"
    assert "damaged" in backup_record.verification_details["problems"][0]


def test_restore_test_compares_row_counts(backup_dir, some_data):
    backup_record = backup_create()
    # A catalog that claims different counts than the archive holds must fail the restore test.
    BackupRecord.objects.filter(pk=backup_record.pk).update(
        row_counts={**backup_record.row_counts, "core_concept": 31, "ghost_table": 1}
    )
    backup_record.refresh_from_db()
    result = backup_verify(backup_record=backup_record, restore_test=True)
    assert not result.passed and result.checksum_ok
    assert any("core_concept: 30 rows after restore, 31" in problem for problem in result.problems)
    assert any("ghost_table is missing" in problem for problem in result.problems)


def test_verify_unknown_id_and_missing_argument(db):
    command_error("verify_backup", "424242", match="No backup with id")
    command_error("verify_backup", match="backup id or --latest")
    command_error("verify_backup", "--latest", match="No successful backup")


def test_latest_means_the_newest_full_backup_for_the_command_and_the_weekly_task(backup_dir, some_data):
    from django.utils import timezone

    from dbops import tasks

    # Given a full backup, then newer safety and PITR base backups (rows only: they must not be picked)
    full = backup_create()
    for kind in (BackupRecord.Kind.SAFETY, BackupRecord.Kind.BASE):
        BackupRecord.objects.create(
            kind=kind, status=BackupRecord.Status.SUCCEEDED, started_at=timezone.now(), engine="postgresql",
            database_alias="default", database_name="x", format="custom", storage_name=f"missing-{kind}.dump",
        )  # fmt: skip

    # When `verify_backup --latest` and the weekly verification task run
    output = run_command("verify_backup", "--latest")
    result = tasks.verify_latest_backup.apply(task_id="verify-latest-full", kwargs={"restore_test": False}).get()

    # Then both verified the full backup; --kind picks another kind on purpose
    assert f"Backup #{full.pk} verified" in output and result["backup_id"] == full.pk
    newest_safety = BackupRecord.objects.filter(kind=BackupRecord.Kind.SAFETY).get()
    command_error(
        "verify_backup", "--latest", "--kind", "safety", match=f"Backup #{newest_safety.pk} FAILED verification"
    )


def test_a_restore_test_shows_decoding_progress_on_a_terminal_only(backup_dir, some_data):
    backup_record = backup_create(compression="zstd")
    shown = on_a_terminal("verify_backup", str(backup_record.pk), "--restore-test")
    assert "\rverify: decoding: " in shown and "verified" in shown
    assert "\r" not in on_a_terminal("verify_backup", str(backup_record.pk), "--restore-test", "--quiet")
    assert "\r" not in run_command("verify_backup", str(backup_record.pk), "--restore-test")  # not a terminal
