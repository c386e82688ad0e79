"""import_data's fast paths keep its behaviour: indexes and keys rebuilt on big loads, strict JSON lines."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from dbops.engines.postgresql.copy_format import COPY_ESCAPES
from dbops.exceptions import ImportFormatError, ImportValidationError
from dbops.services.datamigration.entities import ENTITIES
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.formats.base import json_loads
from dbops.services.datamigration.formats.jsonl import _json_line
from dbops.services.datamigration.import_fields import _fast_json, _fast_text
from dbops.services.datamigration.imports import import_data
from tests.dbops.services.datamigration.helpers import domain_rows, seed, wipe_domain


def _index_and_key_definitions() -> list[tuple[str, str]]:
    tables = [entity.table for entity in ENTITIES.values()]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = ANY(%s::regclass[]) "
            "UNION ALL SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid = ANY(%s::regclass[]) ORDER BY 1",
            [tables, tables],
        )
        return cursor.fetchall()


@pytest.mark.django_db
@pytest.mark.parametrize("user", ["owner", "table rights only"])
def test_import_into_empty_tables_rebuilds_every_index_and_foreign_key(tmp_path, user):
    """A user who does not own the tables may not drop their indexes ("must be owner of index", as it
    failed): that one imports with the indexes kept, and the outcome is the same."""
    # given an export and the same tables emptied (so every table is rebuilt on import)
    seed(scale=0.2)
    before, definitions = domain_rows(), _index_and_key_definitions()
    target = tmp_path / "all.jsonl"
    export_data(entities=None, output=target, fmt="jsonl")
    wipe_domain()
    if user == "table rights only":
        with connection.cursor() as cursor:  # undone with the test's transaction
            cursor.execute("CREATE ROLE dbops_table_rights NOLOGIN")
            cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            cursor.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO dbops_table_rights")
            cursor.execute("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO dbops_table_rights")
            cursor.execute("SET ROLE dbops_table_rights")
    # when it is imported
    try:
        import_data(input_path=target, fmt="jsonl", allow_privileged=True)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    # then the rows are back and so is every index and foreign key, as it was defined
    assert domain_rows() == before
    assert _index_and_key_definitions() == definitions


@pytest.mark.django_db
def test_a_failed_big_import_leaves_indexes_and_keys_in_place(tmp_path, monkeypatch):
    seed(scale=0.2)
    definitions = _index_and_key_definitions()
    target = tmp_path / "all.jsonl"
    export_data(entities=None, output=target, fmt="jsonl")
    wipe_domain()
    from dbops.engines.postgresql import bulk_indexes

    def failing_restore(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bulk_indexes.IndexSuspension, "restore", failing_restore)
    with pytest.raises(RuntimeError):
        import_data(input_path=target, fmt="jsonl", allow_privileged=True)
    assert _index_and_key_definitions() == definitions
    assert all(not entity.model.objects.exists() for entity in ENTITIES.values())


@pytest.mark.parametrize(
    "line", ['{"a": 1}\n', '  {"a": 1}\n', '{"a": 1} \r\n', '{"a": "x\\ty"}', '{"a": 1e400, "b": NaN}\n']
)
def test_json_line_reads_what_json_loads_reads(line):
    assert repr(_json_line(line)) == repr(json_loads(line))  # numbers exactly: 1e400 stays 1E+400


@pytest.mark.parametrize("line", ['{"a": 1} x\n', '{"a": 1}{"b": 2}\n', '{"a": \n', "\ufeff{}\n", "", '{"a": 1}\x0b\n'])
def test_json_line_fails_with_json_loads_own_message(line):
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(line)
    with pytest.raises(json.JSONDecodeError) as got:
        _json_line(line)
    assert (got.value.msg, got.value.pos) == (expected.value.msg, expected.value.pos)


def test_fast_text_and_json_escape_only_what_copy_needs():
    convert = _fast_text(None, COPY_ESCAPES, blank=True)
    assert convert("plain ünïcode") == "plain ünïcode"
    assert convert("a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"
    assert _fast_json(COPY_ESCAPES)({}) == "{}"
    assert _fast_json(COPY_ESCAPES)({"k": "a\tb\\c", "ü": [1, None]}) == '{"k":"a\\\\tb\\\\\\\\c","ü":[1,null]}'


@pytest.mark.django_db
def test_malformed_jsonl_lines_keep_their_messages(tmp_path):
    target = tmp_path / "bad.jsonl"
    header = json.dumps({"format": "multipult-export", "version": 1})
    target.write_text(header + '\n{"entity":"roles","data":{"id":1}} trailing\n')
    with pytest.raises(ImportFormatError, match="line 2: malformed JSON: Extra data"):
        import_data(input_path=target, fmt="jsonl")
    target.write_text(header + '\n{"entity":"nope","data":{}}\n')
    with pytest.raises(ImportFormatError, match="line 2: unknown entity 'nope'"):
        import_data(input_path=target, fmt="jsonl")
    target.write_text(
        header + '\n{"entity":"roles","data":{"id":1,"name":"' + "x" * 65 + '"}}\n{"end":true,"counts":{"roles":1}}\n'
    )
    with pytest.raises(ImportValidationError, match="roles record 1, field 'name': longer than 64 characters"):
        import_data(input_path=target, fmt="jsonl")
