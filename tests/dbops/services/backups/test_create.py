"""backup_create / backup_export against the real PostgreSQL and pg_dump, and SQLite via the connector."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
from pathlib import Path

import pytest
import zstandard
from django.db import connection

from dbops.artifacts.manifest import MANIFEST_SUFFIX
from dbops.artifacts.pipeline import PGDUMP_MAGIC, PLAIN_DUMP_END, SQLITE_MAGIC
from dbops.models import BackupRecord
from dbops.services.backups.create import backup_create, backup_export

pytestmark = pytest.mark.django_db(transaction=True)


def _decoded(path: Path, compression: str) -> bytes:
    raw = path.read_bytes()
    if compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True).read()
    if compression == "gzip":
        return gzip.decompress(raw)
    return raw


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608
        return cursor.fetchone()[0]


@pytest.mark.parametrize(("compression", "fmt"), [("zstd", "custom"), ("gzip", "custom"), ("none", "plain")])
def test_backup_create_writes_checksummed_artifact_manifest_and_row_counts(backup_dir, some_data, compression, fmt):
    backup_record = backup_create(compression=compression, fmt=fmt, tag="t1")

    backup_record.refresh_from_db()
    assert backup_record.status == BackupRecord.Status.SUCCEEDED
    artifact = Path(backup_record.location)
    assert artifact.is_file() and artifact.parent.parent == backup_dir
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == backup_record.sha256
    assert artifact.stat().st_size == backup_record.size_bytes
    assert not list(backup_dir.rglob("*.partial"))
    # Row counts come from the dump's own snapshot and match the live tables.
    assert backup_record.row_counts["core_dictionaryentry"] == _count("core_dictionaryentry") == 50
    assert backup_record.row_counts["core_concept"] == 30
    assert backup_record.server_version.startswith("15")
    assert "pg_dump" in backup_record.tool_version
    assert "dbops" in backup_record.migration_state

    manifest = json.loads(Path(str(artifact) + MANIFEST_SUFFIX).read_text())
    assert manifest["sha256"] == backup_record.sha256
    assert manifest["status"] == "succeeded"
    assert manifest["row_counts"] == backup_record.row_counts
    assert manifest["id"] == backup_record.pk

    dump = _decoded(artifact, compression)
    if fmt == "custom":
        assert dump.startswith(PGDUMP_MAGIC)
        listing = subprocess.run(["pg_restore", "--list"], input=dump, capture_output=True, check=True).stdout
        assert b"TABLE DATA public core_dictionaryentry" in listing
    else:
        assert PLAIN_DUMP_END in dump[-200:]
        assert b"colour number 49" in dump


def test_zstd_is_smaller_than_uncompressed(backup_dir, some_data):
    plain = backup_create(compression="none")
    packed = backup_create(compression="zstd")
    assert packed.size_bytes < plain.size_bytes


def test_backup_export_writes_plain_sql_atomically(tmp_path, some_data):
    output = tmp_path / "backup.sql"
    result = backup_export(output=output)
    text = output.read_bytes()
    assert result.fmt == "plain" and result.compression == "none"
    assert hashlib.sha256(text).hexdigest() == result.sha256
    assert PLAIN_DUMP_END in text[-300:]
    assert b"colour number 7" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.sql", "backup.sql.sha256"]
    # The sidecar is what coreutils' own checker reads.
    assert (tmp_path / "backup.sql.sha256").read_text() == f"{result.sha256}  backup.sql\n"
    checked = subprocess.run(["sha256sum", "-c", "backup.sql.sha256"], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0 and "backup.sql: OK" in checked.stdout


def test_backup_of_sqlite_alias_uses_online_backup_api(backup_dir, sqlite_alias):
    alias, path = sqlite_alias
    backup_record = backup_create(database=alias, compression="zstd")
    assert backup_record.engine == "sqlite" and backup_record.format == "sqlite"
    assert backup_record.row_counts == {"item": 100, "tag": 7}
    dump = _decoded(Path(backup_record.location), "zstd")
    assert dump.startswith(SQLITE_MAGIC)
    assert backup_record.storage_name.startswith("scratch/")
