"""`backup_advanced --compress zstd:LEVEL`: the level reaches the real zstd stream (the same dump makes a
different artifact at another level, and both restore-test), and a bad level is one line, nothing taken."""

from __future__ import annotations

import pytest
from django.db import connection

from dbops.models import BackupRecord
from dbops.services.backups.verify import backup_verify
from tests.commands import command_error, run_command

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def compressible_table():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE level_rows (id integer PRIMARY KEY, payload text NOT NULL)")
        cursor.execute(
            "INSERT INTO level_rows SELECT g, repeat(md5((g % 97)::text), 8) FROM generate_series(1, 20000) g"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS level_rows")


def test_the_level_reaches_zstd_and_both_restore(backup_dir, compressible_table):
    run_command("backup_advanced", "--compress", "zstd:1")
    run_command("backup_advanced", "--compress", "zstd:19")
    level_1, level_19 = BackupRecord.objects.order_by("pk")
    assert level_1.compression == level_19.compression == "zstd"
    assert level_19.size_bytes != level_1.size_bytes  # zstd is deterministic: equal sizes would mean one level
    for backup_record in (level_1, level_19):
        assert backup_verify(backup_record=backup_record, restore_test=True).passed


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("zstd:0", "--compress: The zstd level must be 1 to 22; got '0'."),
        ("zstd:fast", "--compress: The zstd level must be 1 to 22; got 'fast'."),
        ("gzip:9", "--compress: Unknown compression 'gzip:9'; use zstd[:LEVEL], none, gzip."),
    ],
)
def test_a_bad_level_is_one_line_and_takes_nothing(backup_dir, value, message):
    assert command_error("backup_advanced", "--compress", value) == message
    assert not BackupRecord.objects.exists()
