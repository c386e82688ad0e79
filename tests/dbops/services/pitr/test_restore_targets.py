"""Restore targets on a real throwaway cluster: `pitr mark NAME` makes a restore point, and `pitr restore
--target-name` / `--target-lsn` rebuild a data directory that, started, holds exactly the rows from
before that point (the shared server is only read)."""

from __future__ import annotations

import pytest

from dbops.services.pitr.recovery import pitr_base_backup_create
from tests.commands import command_error, run_command
from tests.dbops.services.pitr.cluster import (  # noqa: F401  (pitr_clusters: fixture)
    a_moment_between,
    database_alias,
    pitr_clusters,
    switch_wal_and_wait,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def restored_rows(factory, name: str, *target: str) -> list[tuple]:
    restored = factory.adopt(factory.root / name)
    output = run_command(
        "pitr", "restore", *target, "--target-dir", str(restored.data_dir), "--port", str(restored.port),
        "--owner", "postgres", "--python", factory.python,
    )  # fmt: skip
    assert "it recovers to " in output
    restored.start()
    restored.wait_until("SELECT pg_is_in_recovery()", False)
    rows = restored.query("SELECT id, batch FROM item ORDER BY id")
    restored.stop()
    return rows


def test_restore_to_a_marked_point_and_to_an_lsn(pitr_clusters):  # noqa: F811
    source = pitr_clusters.archiving_source()
    source.query("CREATE TABLE item (id int PRIMARY KEY, batch text NOT NULL)")
    with database_alias("pitr_source", source.port) as alias:
        pitr_base_backup_create(using=alias)
        source.query("INSERT INTO item SELECT i, 'a' FROM generate_series(1, 20) i")
        output = run_command("pitr", "mark", "before-b", "--database", alias)
        assert output.startswith("Restore point 'before-b' of cluster ")
        source.query("INSERT INTO item SELECT i, 'b' FROM generate_series(21, 40) i")
        after_b = source.query("SELECT pg_current_wal_insert_lsn()::text")[0][0]
        source.query("INSERT INTO item SELECT i, 'c' FROM generate_series(41, 60) i")
        source.query("DELETE FROM item WHERE id <= 5")
        switch_wal_and_wait(source)
        assert "is not a restore point name" in command_error("pitr", "mark", "no/slash", "--database", alias)

    assert restored_rows(pitr_clusters, "by-name", "--target-name", "before-b") == [(i, "a") for i in range(1, 21)]
    rows = restored_rows(pitr_clusters, "by-lsn", "--target-lsn", after_b)
    assert rows == [(i, "a") for i in range(1, 21)] + [(i, "b") for i in range(21, 41)]


def test_a_delta_restore_over_the_stopped_cluster_keeps_matching_files(pitr_clusters):  # noqa: F811
    source = pitr_clusters.archiving_source()
    source.query("CREATE TABLE item (id int PRIMARY KEY, batch text NOT NULL)")
    with database_alias("pitr_source", source.port) as alias:
        pitr_base_backup_create(using=alias)
    source.query("INSERT INTO item SELECT i, 'a' FROM generate_series(1, 20) i")
    target = a_moment_between(source, pause=0.3)
    source.query("INSERT INTO item SELECT i, 'b' FROM generate_series(21, 40) i")
    switch_wal_and_wait(source)
    restore = ["pitr", "restore", "--target-time", target, "--target-dir", str(source.data_dir), "--delta"]
    # Given the server still runs there: refused, nothing touched
    assert "A server is running on" in command_error(*restore, "--confirm")
    source.stop()
    assert command_error(*restore).startswith("--confirm: A delta restore rewrites the data directory")
    untouched = (source.data_dir / "PG_VERSION").stat()
    (source.data_dir / "stray.txt").write_text("not in the backup")
    # When it is stopped and confirmed, matching files stay as they were, the rest is the backup's
    run_command(*restore, "--confirm", "--owner", "postgres", "--python", pitr_clusters.python)
    kept = (source.data_dir / "PG_VERSION").stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (untouched.st_ino, untouched.st_mtime_ns)
    assert not (source.data_dir / "stray.txt").exists()
    source.start()
    source.wait_until("SELECT pg_is_in_recovery()", False)
    assert source.query("SELECT id, batch FROM item ORDER BY id") == [(i, "a") for i in range(1, 21)]
