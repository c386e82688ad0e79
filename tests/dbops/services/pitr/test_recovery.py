"""PITR services against the shared server (read-only: its settings are inspected, never changed) and
the catalog; the full backup/restore cycle is in test_pitr_cluster.py."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from dbops.exceptions import PitrError
from dbops.models import BackupRecord, PitrBaseBackup
from dbops.services.pitr.recovery import pitr_base_backup_create, pitr_settings_check, pitr_wal_needed, wal_segment_name
from dbops.services.pitr.wal_archive import wal_archive
from tests.commands import command_error, run_command

pytestmark = pytest.mark.django_db
CLUSTER = "7300000000000000001"


def base_backup(start_wal: str, *, cluster_id: str = CLUSTER, finished_minutes_ago: int = 60) -> BackupRecord:
    finished = timezone.now() - timedelta(minutes=finished_minutes_ago)
    record = BackupRecord.objects.create(
        kind=BackupRecord.Kind.BASE,
        status=BackupRecord.Status.SUCCEEDED,
        started_at=finished - timedelta(minutes=1),
        finished_at=finished,
        engine="postgresql",
        database_name="app",
        format=BackupRecord.Format.TAR,
        compression=BackupRecord.Compression.GZIP,
        storage_name=f"pitr/{cluster_id}/base/x/base.tar.gz",
        sha256="0" * 64,
    )
    PitrBaseBackup.objects.create(
        backup=record, cluster_id=cluster_id, timeline=1, start_lsn="0/0", end_lsn="0/0",
        start_wal=start_wal, end_wal=start_wal, wal_segment_size=16 * 1024 * 1024, storage="local",
    )  # fmt: skip
    return record


def test_wal_segment_name_matches_postgresql():
    # pg_walfile_name('0/2000028') on timeline 1 with 16 MB segments, and a high LSN with 1 MB segments.
    assert wal_segment_name(1, "0/2000028", 16 * 1024 * 1024) == "000000010000000000000002"
    assert wal_segment_name(3, "1/A3000000", 1024 * 1024) == "000000030000000100000A30"


def test_settings_check_reports_what_to_fix_on_a_server_without_archiving():
    report = pitr_settings_check(python="/opt/py/bin/python")

    by_name = {check.name: check for check in report.checks}
    assert not report.ok  # the shared test server does not archive WAL
    assert not by_name["archive_mode"].ok and "ALTER SYSTEM SET archive_mode = 'on'" in by_name["archive_mode"].fix
    assert not by_name["archive_command"].ok
    assert report.archive_command.startswith("/opt/py/bin/python ") and report.archive_command.endswith(
        "manage.py archive_wal %p %f"
    )
    assert by_name["archive_command"].fix.startswith("ALTER SYSTEM SET archive_command = '/opt/py/bin/python ")


def test_setup_command_prints_the_fixes_and_exits_non_zero():
    out = StringIO()
    command_error("pitr", "setup", stdout=out, match="not ready for PITR")
    assert "[FAIL] archive_mode = 'off'" in out.getvalue()
    assert "archive_command to use:" in out.getvalue()


def test_base_backup_refuses_before_any_work_when_the_server_is_not_set_up(backup_dir):
    with pytest.raises(PitrError, match="not set up for PITR"):
        pitr_base_backup_create()
    assert BackupRecord.objects.count() == 0
    assert list(backup_dir.iterdir()) == []


def test_wal_needed_keeps_everything_from_the_oldest_kept_base_backup(backup_dir, settings, tmp_path):
    settings.PITR_STORAGE = "local"
    names = [f"00000001000000000000000{i}" for i in range(1, 8)] + ["00000002.history", "000000020000000000000007"]
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
        wal_archive(path=tmp_path / name, name=name, cluster_id=CLUSTER)
    old, new = base_backup("000000010000000000000003"), base_backup("000000010000000000000006")
    full_backup = BackupRecord.objects.create(
        kind=BackupRecord.Kind.FULL, started_at=timezone.now(), engine="postgresql", database_name="app", format="plain"
    )

    both = pitr_wal_needed(kept_base_backups=[new, old, full_backup])
    newest_only = pitr_wal_needed(kept_base_backups=[new])
    none_kept = pitr_wal_needed(kept_base_backups=[full_backup])

    assert both.needed[CLUSTER] == sorted(names)[2:]  # from ...03 on, history and timeline 2 included
    assert both.removable[CLUSTER] == ["000000010000000000000001", "000000010000000000000002"]
    assert newest_only.needed[CLUSTER] == ["00000001000000000000000" + n for n in "67"] + [
        "00000002.history",
        "000000020000000000000007",
    ]
    assert none_kept.needed[CLUSTER] == [] and len(none_kept.removable[CLUSTER]) == len(names)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--target-time", "yesterday"), "is not a date and time"),
        (("--target-time", "2026-01-27 12:00:00"), "needs a timezone"),
        (("--target-time", "2999-01-01 00:00:00+00"), "in the future"),
        (("--target-time", "2020-01-01 00:00:00+00"), "No PITR base backup finished before"),
        (("--target-time", "{recent}", "--backup-id", "999999"), "not a succeeded PITR base backup"),
        (("--target-time", "{recent}", "--target-dir", "{nonempty}"), "not an empty directory"),
        (("--target-time", "{recent}", "--target-dir", "/no/such/parent/dir"), "does not exist"),
        (("--target-time", "{recent}", "--port", "70000"), "^--port: The port must be between 1 and 65535; got 70000"),
        (("--target-time", "{recent}", "--owner", "no-such-user-xyz"), "^--owner: No such OS user"),
        (("--target-lsn", "nonsense"), r"^--target-lsn: 'nonsense' is not an LSN like 0/3000028\.$"),
        (("--target-lsn", "5/0"), "^The archive has no WAL segment holding LSN 5/0 yet"),
        (("--target-xid", "1"), r"^--target-xid: '1' is not a transaction id \(a number from 3\)\.$"),
        (("--target-xid", "1234"), "^--backup-id: Which base backup precedes transaction 1234 cannot be told"),
        (("--target-name", "not a name!"), "^--target-name: 'not a name!' is not a restore point name"),
        (("--target-name", "never-marked"), "^--backup-id: Which base backup precedes restore point 'never-marked'"),
        (("--target-time", "{recent}", "--target-lsn", "0/1"), "not allowed with argument --target-time"),
        (("--target-time", "{recent}", "--target-dir", "{nonempty}", "--delta"), "is not a PostgreSQL data directory"),
    ],
)
def test_restore_bad_input_is_one_message_and_creates_nothing(backup_dir, tmp_path, args, message):
    base_backup("000000010000000000000003")
    nonempty = tmp_path / "nonempty"
    nonempty.mkdir()
    (nonempty / "keep.txt").write_text("mine")
    recent = (timezone.now() - timedelta(minutes=1)).isoformat()
    args = [arg.replace("{recent}", recent).replace("{nonempty}", str(nonempty)) for arg in args]
    if "--target-dir" not in args:
        args += ["--target-dir", str(tmp_path / "restored")]

    command_error("pitr", "restore", *args, match=message)

    assert not (tmp_path / "restored").exists()
    assert [p.name for p in nonempty.iterdir()] == ["keep.txt"]


def test_restore_refuses_a_target_the_archived_wal_does_not_reach(backup_dir, tmp_path, settings):
    settings.PITR_STORAGE = "local"
    base_backup("000000010000000000000003")
    (tmp_path / "segment").write_bytes(b"wal")
    wal_archive(path=tmp_path / "segment", name="000000010000000000000004", cluster_id=CLUSTER)

    target_dir = tmp_path / "restored"
    command_error(
        "pitr", "restore", "--target-time", timezone.now().isoformat(), "--target-dir", str(target_dir),
        match="no WAL from after .* pg_switch_wal",
    )  # fmt: skip
    assert not (tmp_path / "restored").exists()


def test_restore_of_a_corrupt_base_backup_removes_the_new_directory(backup_dir, tmp_path, settings):
    settings.PITR_STORAGE = "local"
    record = base_backup("000000010000000000000003")
    (tmp_path / "segment").write_bytes(b"wal")
    for name in ("000000010000000000000003", "000000010000000000000004"):
        wal_archive(path=tmp_path / "segment", name=name, cluster_id=CLUSTER)
    target = timezone.now() - timedelta(seconds=1)  # before the segments above were archived
    artifact = backup_dir / record.storage_name
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(b"not a tar.gz at all")

    target_dir = tmp_path / "restored"
    command_error(
        "pitr",
        "restore",
        "--target-time",
        target.isoformat(),
        "--target-dir",
        str(target_dir),
        match="cannot be unpacked",
    )
    assert not (tmp_path / "restored").exists()


def test_status_lists_base_backups_and_wal_extent_per_cluster(backup_dir, tmp_path, settings):
    settings.PITR_STORAGE = "local"
    record = base_backup("000000010000000000000003")
    for name in ("000000010000000000000003", "000000010000000000000004", "00000002.history"):
        content = b"1\t0/9000000\tno recovery target specified\n" if name.endswith(".history") else name.encode()
        (tmp_path / name).write_bytes(content)
        wal_archive(path=tmp_path / name, name=name, cluster_id=CLUSTER)
    (tmp_path / "orphan").write_bytes(b"x")
    wal_archive(path=tmp_path / "orphan", name="000000010000000000000001", cluster_id="42")

    payload = json.loads(run_command("pitr", "status", "--json"))
    text = run_command("pitr", "status")

    assert payload["total"] == 2 and payload["limit"] == 50
    ours, orphan = sorted(payload["clusters"], key=lambda item: item["cluster_id"] != CLUSTER)
    assert ours["cluster_id"] == CLUSTER and ours["wal_files"] == 3
    assert (ours["first_wal"], ours["last_wal"]) == ("000000010000000000000003", "000000010000000000000004")
    assert [base["id"] for base in ours["base_backups"]] == [record.pk] and ours["base_backups_total"] == 1
    assert orphan["cluster_id"] == "42" and orphan["base_backups"] == []
    assert f"base backup #{record.pk}" in text and "no base backup: this WAL cannot be used" in text


def test_status_stops_at_its_limit_for_clusters_and_base_backups(backup_dir, tmp_path, settings):
    settings.PITR_STORAGE = "local"
    newest_first = [base_backup(f"00000001000000000000000{n}", finished_minutes_ago=60 - n) for n in (3, 4, 5)]
    newest_first.reverse()
    (tmp_path / "segment").write_bytes(b"wal")
    for cluster_id in (CLUSTER, f"{CLUSTER}1", f"{CLUSTER}2"):  # listed in this order
        wal_archive(path=tmp_path / "segment", name="000000010000000000000005", cluster_id=cluster_id)

    payload = json.loads(run_command("pitr", "status", "--json", "--limit", "2"))
    text = run_command("pitr", "status", "--limit", "2")

    assert (payload["total"], payload["limit"], len(payload["clusters"])) == (3, 2, 2)
    [ours] = [cluster for cluster in payload["clusters"] if cluster["cluster_id"] == CLUSTER]
    assert [base["id"] for base in ours["base_backups"]] == [record.pk for record in newest_first[:2]]
    assert ours["base_backups_total"] == 3
    assert "… and 1 more older base backups (--limit 0 lists all)." in text
    assert text.rstrip().endswith("… and 1 more clusters (--limit 0 lists all).")
    everything = json.loads(run_command("pitr", "status", "--json", "--limit", "0"))
    assert len(everything["clusters"]) == 3


def test_system_check_warns_when_pitr_storage_is_s3_without_a_bucket(settings):
    from dbops.checks import check_pitr_settings

    settings.PITR_STORAGE = "s3"
    settings.STORAGES = {name: spec for name, spec in settings.STORAGES.items() if name != "backups_s3"}
    assert [warning.id for warning in check_pitr_settings(None)] == ["dbops.W801"]
    settings.PITR_STORAGE = "local"
    assert check_pitr_settings(None) == []


def test_unpacking_reports_progress_about_every_megabyte_and_at_the_end():
    from io import BytesIO

    from dbops.services.pitr.recovery import _HashingReader

    calls = []
    reader = _HashingReader(BytesIO(b"x" * (3 * 1024 * 1024 + 10)), 3 * 1024 * 1024 + 10, lambda *c: calls.append(c))
    while reader.read(256 * 1024):
        pass
    assert [done for _label, done, _total in calls] == [1 << 20, 2 << 20, 3 << 20, (3 << 20) + 10]
    assert calls[-1][1] == calls[-1][2]


def test_catalog_rebuild_from_storage_brings_back_the_pitr_facts_of_a_base_backup(backup_dir):
    from django.db import connection

    from dbops.artifacts.manifest import manifest_of, manifest_write
    from dbops.artifacts.storage import local_storage
    from dbops.services.backups.catalog import catalog_sync

    # Given a base backup of this database whose artifact and manifest are in local storage
    record = base_backup("000000010000000000000007")
    record.database_name = connection.settings_dict["NAME"]
    record.save(update_fields=["database_name"])
    local_storage().save(record.storage_name, ContentFile(b"base backup bytes"))
    manifest_write(local_storage(), record.storage_name, manifest_of(record, pitr=record.pitr))
    expected = {
        name: getattr(record.pitr, name) for name in ("cluster_id", "timeline", "start_wal", "end_wal", "storage")
    }
    # When the catalog is lost (as after restoring an older backup) and rebuilt from storage alone
    BackupRecord.objects.all().delete()
    result = catalog_sync(include_s3=False)
    # Then the base backup is back with its PITR facts, so PITR restore and WAL retention still know it
    assert result.created == [record.pk]
    rebuilt = PitrBaseBackup.objects.get(backup_id=record.pk)
    assert {name: getattr(rebuilt, name) for name in expected} == expected
