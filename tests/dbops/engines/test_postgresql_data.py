"""The PostgreSQL connector's data-service methods on the real server: COPY loads and what a rejected
value says, table locks against a real concurrent session, deferred constraints, checksums, sequences."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from dbops.engines import get_connector
from dbops.engines.postgresql import maintenance
from dbops.engines.postgresql.copy_format import copy_text
from dbops.exceptions import BulkLoadRejected
from multipult.core.models import Dictionary, DictionaryEntry, Role


def test_copy_values_escape_what_copy_text_format_treats_specially():
    assert copy_text(None) == "\\N"
    assert copy_text(True) == "t" and copy_text(False) == "f"
    assert copy_text("a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"
    assert copy_text(12) == "12"
    assert get_connector().copy_text("x\ty") == "x\\ty"


@pytest.mark.django_db
def test_copy_into_loads_lines_and_a_rejected_value_says_which_line_and_column():
    connector = get_connector()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE engine_copy (id integer, label text)")
    connector.copy_into('"engine_copy"', ['"id"', '"label"'], "1\tone\n2\ttab\\there\n")
    with pytest.raises(BulkLoadRejected) as rejected, transaction.atomic():
        connector.copy_into('"engine_copy"', ['"id"', '"label"'], "3\tthree\nfour\tbad id\n5\tfive\n")
    assert (rejected.value.line, rejected.value.column) == (2, "id")
    assert "invalid input syntax for type integer" in str(rejected.value)
    with connection.cursor() as cursor:  # the failed load left nothing behind
        cursor.execute("SELECT id, label FROM engine_copy ORDER BY id")
        assert cursor.fetchall() == [(1, "one"), (2, "tab\there")]


INSERT_ROLE = "INSERT INTO core_role (name, description, created_at) VALUES ('{name}', '', now())"


def _other_session_can(statement: str) -> bool:
    """Runs `statement` on a session of its own that gives up after 200 ms waiting for a lock."""
    other = maintenance.connect(connection.settings_dict, autocommit=False)
    try:
        with other.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
            try:
                cursor.execute(statement)
            except maintenance.Error as exc:
                assert "lock timeout" in str(exc)
                return False
        return True
    finally:
        other.rollback()
        other.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "mode, others_read, others_write",
    [("read", True, False), ("write", True, False), ("exclusive", False, False)],
)
def test_lock_tables_keeps_other_sessions_out_as_the_mode_says(mode, others_read, others_write):
    Role.objects.create(name="locked-role")
    with transaction.atomic():
        get_connector().lock_tables(["core_role"], mode=mode)
        assert _other_session_can("SELECT count(*) FROM core_role") is others_read
        assert _other_session_can(INSERT_ROLE.format(name="x")) is others_write
        Role.objects.create(name="our own write")  # the holder itself may always write
    # after commit the others are free again
    assert _other_session_can(INSERT_ROLE.format(name="y"))


def test_lock_tables_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="lock mode"):
        get_connector().lock_tables(["core_role"], mode="share row")


@pytest.mark.django_db
def test_constraints_check_raises_for_a_dangling_reference_inside_the_transaction():
    dictionary = Dictionary.objects.create(name="engine-fk")
    DictionaryEntry.objects.create(dictionary=dictionary, key="k", value="v")
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM core_dictionary WHERE id = %s", [dictionary.pk])  # deferred FK: no error yet
        get_connector().constraints_check()
    assert DictionaryEntry.objects.filter(dictionary=dictionary).exists()


@pytest.mark.django_db
def test_table_checksum_follows_the_rows_not_their_physical_order():
    connector = get_connector()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE engine_sum_a (id integer PRIMARY KEY, v text)")
        cursor.execute("CREATE TABLE engine_sum_b (id integer PRIMARY KEY, v text)")
        cursor.execute("INSERT INTO engine_sum_a VALUES (1, 'x'), (2, 'y'), (3, NULL)")
        cursor.execute("INSERT INTO engine_sum_b VALUES (3, NULL), (1, 'x'), (2, 'y')")
    assert connector.table_checksum("engine_sum_a", "id") == connector.table_checksum("engine_sum_b", "id")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE engine_sum_b SET v = 'Y' WHERE id = 2")
    assert connector.table_checksum("engine_sum_a", "id") != connector.table_checksum("engine_sum_b", "id")


@pytest.mark.django_db
def test_sequence_positions_are_put_back_exactly():
    connector = get_connector()
    Role.objects.create(name="seq-a")
    positions = connector.sequence_positions([("core_role", "id"), ("core_concept", "id")])
    assert set(positions) >= {"core_role"}
    sequence, last_value, is_called = positions["core_role"]
    Role.objects.create(name="seq-b")
    Role.objects.create(name="seq-c")
    connector.sequence_positions_restore(positions)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")  # noqa: S608 - name from the catalog
        assert cursor.fetchone() == (last_value, is_called)


@pytest.mark.django_db
def test_copy_json_lines_writes_one_json_object_per_row(tmp_path):
    import io
    import json

    Role.objects.create(name="json-a", description='quote " and tab\t')
    sql, params = Role.objects.filter(name="json-a").values_list("id", "name", "description").query.sql_with_params()
    copy = get_connector().copy_json_lines(sql, params, ["id", "name", "description"], '{"row": ')
    handle = io.BytesIO()
    assert copy(handle) == 1
    (line,) = handle.getvalue().decode().splitlines()
    assert json.loads(line)["row"]["description"] == 'quote " and tab\t'
