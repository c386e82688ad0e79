"""`pitr restore-table` on a real throwaway cluster: one table's rows as of a moment, replayed from the
base backup and WAL in a scratch server, replace the live rows (other tables untouched) or go into a new
table; refused without --confirm, for a moment before every base backup, or a table that did not exist."""

from __future__ import annotations

import time

import pytest

from dbops.services.pitr.recovery import pitr_base_backup_create
from tests.commands import command_error, run_command
from tests.dbops.services.pitr.cluster import (  # noqa: F401  (pitr_clusters: fixture)
    database_alias,
    pitr_clusters,
    switch_wal_and_wait,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_one_table_comes_back_as_of_a_moment_in_place_or_into_a_new_table(pitr_clusters, monkeypatch, settings):  # noqa: F811
    source = pitr_clusters.archiving_source()
    source.query("CREATE TABLE item (id int PRIMARY KEY, batch text NOT NULL)")
    source.query("CREATE TABLE other (id int PRIMARY KEY)")
    with database_alias("pitr_source", source.port) as alias:
        pitr_base_backup_create(using=alias)
        source.query("INSERT INTO item SELECT i, 'a' FROM generate_series(1, 20) i")
        time.sleep(0.5)
        moment = source.query("SELECT clock_timestamp()")[0][0].isoformat()
        time.sleep(0.5)
        # After the moment: a bad update of item, and other work that must stay
        source.query("UPDATE item SET batch = 'wrong' WHERE id <= 10")
        source.query("DELETE FROM item WHERE id > 15")
        source.query("INSERT INTO other SELECT generate_series(1, 5)")
        switch_wal_and_wait(source)
        pitr_clusters.lend_environment(monkeypatch, settings)
        restore_table = ["pitr", "restore-table", "--database", alias, "--target-time", moment]

        # Without --confirm, or for a table that did not exist then: refused, nothing written
        assert command_error(*restore_table, "item").startswith("--confirm: This writes the rows item had at")
        assert "Table ghost did not exist at" in command_error(*restore_table, "ghost", "--into", "g", "--confirm")
        assert source.query("SELECT count(*) FROM item WHERE batch = 'wrong'") == [(10,)]
        assert source.query("SELECT to_regclass('g') IS NULL") == [(True,)]
        # A moment before every base backup: refused
        assert "No PITR base backup finished before" in command_error(
            "pitr", "restore-table", "item", "--database", alias, "--target-time", "2000-01-01 00:00:00+00", "--confirm"
        )

        output = run_command(*restore_table, "item", "--into", "item_then", "--confirm")
        assert "Table item_then now holds the 20 rows item had at" in output
        assert source.query("SELECT id, batch FROM item_then ORDER BY id") == [(i, "a") for i in range(1, 21)]
        assert source.query("SELECT count(*) FROM item WHERE batch = 'wrong'") == [(10,)]  # untouched
        # An existing table as --into: refused, both tables as they were
        assert "Table other already exists" in command_error(*restore_table, "item", "--into", "other", "--confirm")

        run_command(*restore_table, "item", "--confirm")
        assert source.query("SELECT id, batch FROM item ORDER BY id") == [(i, "a") for i in range(1, 21)]
        assert source.query("SELECT count(*) FROM other") == [(5,)]  # the rest of the database stays
