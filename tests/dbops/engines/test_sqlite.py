"""The SQLite connector's side of the data services, on a real database file: statistics, checksums,
what it does without COPY or plans, and the probe validate_config uses."""

from __future__ import annotations

import pytest
from django.db import connections, transaction

from dbops.engines import database_probe, get_connector
from dbops.exceptions import FeatureUnavailable, RestoreError


@pytest.fixture
def sqlite_connector(sqlite_alias, django_db_blocker):
    alias, path = sqlite_alias
    with django_db_blocker.unblock():
        yield get_connector(alias), path


def test_stats_count_rows_exactly_and_say_what_sqlite_cannot_tell(sqlite_connector):
    connector, path = sqlite_connector
    facts = connector.database_stats(exact=True)
    assert facts.engine == "sqlite" and facts.database == str(path)
    assert {table.name: table.rows_exact for table in facts.tables} == {"item": 100, "tag": 7}
    assert facts.size_bytes == path.stat().st_size
    assert facts.cache_hit_ratio is None and facts.connections is None
    assert "SQLite keeps no index usage" in facts.notes[0]
    # SQLite has no row estimates: the counts are exact whether or not --exact was asked for
    assert {table.name: table.rows_exact for table in connector.database_stats(exact=False).tables} == {
        "item": 100,
        "tag": 7,
    }
    assert "rows are counted exactly" in facts.notes[0]


def test_checksum_follows_the_rows(sqlite_connector):
    connector, _ = sqlite_connector
    before = connector.table_checksum("item", "id")
    with connections[connector.alias].cursor() as cursor:
        cursor.execute("UPDATE item SET name = 'changed' WHERE id = 5")
    changed = connector.table_checksum("item", "id")
    with connections[connector.alias].cursor() as cursor:
        cursor.execute("UPDATE item SET name = 'item 4' WHERE id = 5")
    assert changed != before and connector.table_checksum("item", "id") == before


def test_snapshot_copies_round_trip(sqlite_connector):
    connector, _ = sqlite_connector
    before = connector.table_checksum("item", "id")
    with transaction.atomic(using=connector.alias):
        assert connector.table_copy_create("item", "dbops_snap_item") == 100
        with connections[connector.alias].cursor() as cursor:
            cursor.execute("DELETE FROM item WHERE id > 50")
        connector.tables_refill({"item": "dbops_snap_item"})
        connector.table_drop("dbops_snap_item")
    assert connector.table_checksum("item", "id") == before
    assert "dbops_snap_item" not in connections[connector.alias].introspection.table_names()


def test_what_sqlite_does_not_have_is_said_not_faked(sqlite_connector):
    connector, _ = sqlite_connector
    assert not connector.supports_copy and connector.copy_escapes is None and not connector.supports_plans
    with pytest.raises(FeatureUnavailable):
        connector.copy_into('"item"', ['"id"'], "1\n")
    with pytest.raises(FeatureUnavailable, match="query plans need PostgreSQL"):
        connector.explain("SELECT 1", analyze=False, parameter_count=0, timeout_ms=1000)
    assert connector.sequence_positions([("item", "id")]) == {}
    assert connector.missing_tools("backup") == []
    connector.lock_tables(["item"], mode="write")  # the write transaction locks the file: nothing to do


def test_the_probe_opens_a_database_file_and_refuses_anything_else(sqlite_alias, tmp_path):
    _, path = sqlite_alias
    assert database_probe(engine="sqlite", settings_dict={"NAME": path}, timeout=1) == ""
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("just some text, long enough to have a header page " * 20)
    assert "file is not a database" in database_probe(
        engine="sqlite", settings_dict={"NAME": not_a_database}, timeout=1
    )


def test_a_plain_script_restores_statement_by_statement_and_a_truncated_one_changes_nothing(sqlite_connector, tmp_path):
    connector, _ = sqlite_connector
    with connections[connector.alias].cursor() as cursor:
        cursor.execute("UPDATE item SET name = ? WHERE id = 1", ["two lines;\nand a semicolon"])
    dump = tmp_path / "dump.sql"
    with dump.open("wb") as stream:
        connector.dump(stream, fmt="plain")
    script = dump.read_text()
    with connections[connector.alias].cursor() as cursor:
        cursor.execute("DELETE FROM item WHERE id > 50")

    def item_names() -> list[str]:
        with connections[connector.alias].cursor() as cursor:
            cursor.execute("SELECT name FROM item ORDER BY id")
            return [row[0] for row in cursor.fetchall()]

    changed = item_names()
    # A script cut before its COMMIT (at a statement's end) or inside a statement: refused, nothing replaced
    before_commit = script[: script.rindex("COMMIT;")]
    inside = script[: script.index("INSERT INTO") + 30]
    for cut, why in ((before_commit, "before its COMMIT"), (inside, "inside a statement")):
        (tmp_path / "cut.sql").write_text(cut)
        with pytest.raises(RestoreError, match=f"{why}.*Nothing was restored: the database is as it was"):
            connector.restore(tmp_path / "cut.sql", fmt="plain")
        assert item_names() == changed
    # The whole script restores every row, the multi-line value included
    connector.restore(dump, fmt="plain")
    names = item_names()
    assert len(names) == 100 and names[0] == "two lines;\nand a semicolon"
