"""Faults in the WAL archive of a real throwaway cluster, found before a restore needs them: a deleted
segment (a gap) shown by `pitr status` and refused by `pitr restore` before it creates anything; and
`pitr check` on a healthy archiver, a broken archive_command, and an archiver that does not finish."""

from __future__ import annotations

import json
import time

import pytest

from dbops.services.pitr.recovery import pitr_archive_command, pitr_base_backup_create
from dbops.services.pitr.wal_archive import pitr_storage, wal_archived_names, wal_prefix
from tests.commands import command_error, run_command
from tests.dbops.services.pitr.cluster import (  # noqa: F401  (pitr_clusters: fixture)
    database_alias,
    pitr_clusters,
    switch_wal_and_wait,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def noted_time(source):
    time.sleep(0.2)  # clearly apart from the writes around it
    noted = source.query("SELECT clock_timestamp()")[0][0]
    time.sleep(0.2)
    return noted


def write_and_switch(source, batch: str) -> str:
    source.query("INSERT INTO item (batch) SELECT %s FROM generate_series(1, 20)", [batch])
    return switch_wal_and_wait(source)


def test_a_deleted_segment_shows_in_status_and_stops_a_restore_that_needs_it(pitr_clusters, tmp_path):  # noqa: F811
    # Given a base backup and WAL archived after it: A (after a noted time), B, then C (after a later time)
    source = pitr_clusters.archiving_source()
    source.query("CREATE TABLE item (id serial PRIMARY KEY, batch text NOT NULL)")
    with database_alias("pitr_source", source.port) as alias:
        record = pitr_base_backup_create(using=alias)
    write_and_switch(source, "after backup")
    before_gap = noted_time(source)
    write_and_switch(source, "A")
    missing = write_and_switch(source, "B")
    beyond_gap = noted_time(source)
    write_and_switch(source, "C")
    # When segment B is lost from the archive (deleted under our manifest)
    _kind, backend = pitr_storage()
    cluster_id = record.pitr.cluster_id
    backend.delete(f"{wal_prefix(cluster_id)}/{missing}.json")
    backend.delete(f"{wal_prefix(cluster_id)}/{missing}.zst")
    archived = wal_archived_names(cluster_id=cluster_id)

    # Then `pitr status` shows the gap, and that the base backup replays only up to the segment before it
    text = run_command("pitr", "status")
    assert f"WAL GAP: {missing} .. {missing} missing (1 segment(s))" in text
    assert f"{missing} is missing" in text
    clusters = json.loads(run_command("pitr", "status", "--json"))["clusters"]
    [status] = [item for item in clusters if item["cluster_id"] == cluster_id]
    assert [gap["first_missing"] for gap in status["gaps"]] == [missing]
    [base] = status["base_backups"]
    assert base["wal_first_missing"] == missing and base["wal_until"] < missing

    # And a restore to now refuses in one line naming the missing segment, creating nothing
    target_dir = tmp_path / "restored"
    message = command_error("pitr", "restore", "--target-time", beyond_gap.isoformat(), "--target-dir", str(target_dir))
    assert f"is missing {missing}" in message
    assert not target_dir.exists()
    assert wal_archived_names(cluster_id=cluster_id) == archived  # the archive is as it was

    # But a restore to the earlier time, which replay reaches before the gap, is still built
    run_command("pitr", "restore", "--target-time", before_gap.isoformat(), "--target-dir", str(target_dir))
    assert (target_dir / "recovery.signal").exists()


@pytest.mark.parametrize("pitr_clusters", ["local"], indirect=True)
def test_check_sees_the_switched_segment_arrive_in_the_archive(pitr_clusters):  # noqa: F811
    source = pitr_clusters.archiving_source()
    with database_alias("pitr_source", source.port) as alias:
        payload = json.loads(run_command("pitr", "check", "--database", alias, "--json"))
        text = run_command("pitr", "check", "--database", alias)
    cluster_id = source.query("SELECT system_identifier::text FROM pg_control_system()")[0][0]
    assert payload["cluster_id"] == cluster_id and payload["storage"] == "local"
    assert payload["segment"] in wal_archived_names(cluster_id=cluster_id)
    assert payload["archiver"]["archived_count"] >= 1 and payload["archiver"]["last_archived_wal"] >= payload["segment"]
    # A second check switches again (a restore point makes WAL to switch on an idle server)
    assert "WAL archiving works: " in text and payload["segment"] not in text


@pytest.mark.parametrize("pitr_clusters", ["local"], indirect=True)
def test_check_fails_in_one_line_when_archive_command_fails(pitr_clusters):  # noqa: F811
    # Given a server whose archive_command sends WAL to S3 while its environment has no bucket set
    failing = pitr_archive_command(python=pitr_clusters.python) + " --storage s3"
    source = pitr_clusters.archiving_source(archive_command=failing)
    cluster_id = source.query("SELECT system_identifier::text FROM pg_control_system()")[0][0]

    with database_alias("pitr_source", source.port) as alias:
        message = command_error("pitr", "check", "--database", alias, "--timeout", "120")

    assert message.startswith("The archiver is failing: archive_command failed on ")
    segment = message.split("failed on ")[1].split()[0]
    assert source.query("SELECT last_failed_wal FROM pg_stat_archiver")[0][0] == segment
    assert wal_archived_names(cluster_id=cluster_id) == []


@pytest.mark.parametrize("pitr_clusters", ["local"], indirect=True)
def test_check_gives_up_after_the_timeout_when_archive_command_cannot_start(pitr_clusters):  # noqa: F811
    # Given an archive_command whose interpreter is not there: the archiver process dies on it
    # (exit 127) before pg_stat_archiver counts a failure, so only the timeout can tell
    broken = pitr_archive_command(python="/nonexistent/bin/python3")
    source = pitr_clusters.archiving_source(archive_command=broken)

    with database_alias("pitr_source", source.port) as alias:
        message = command_error("pitr", "check", "--database", alias, "--timeout", "3")

    assert "was not archived in local storage within 3s" in message
    assert "last archived none" in message and "may not even start" in message
