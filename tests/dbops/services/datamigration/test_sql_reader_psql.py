"""import_data --format sql reads what psql would accept as PostgreSQL reads it (the server itself is the
oracle for every literal), refuses what psql refuses in one line, and checks export_data's end line."""

from __future__ import annotations

import os
import subprocess

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import JSONField, Value

from dbops.engines.postgresql.tools import tool_path
from dbops.exceptions import ImportFormatError
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.formats.sql_reader import read_sql
from dbops.services.datamigration.imports import import_data
from multipult.core.models import AuditLog, Concept, Role
from tests.dbops.services.datamigration.helpers import ROLE_INSERT, domain_rows, fingerprint, seed, wipe_domain

LITERALS = [
    r"E'caf\xc3\xa9 \303\251 \q\'\\ \b\f\n\r\t \1011 \x41g \xg'",  # \xhh \ooo: UTF-8 bytes, not Latin-1
    r"E'\xc3' " + "\n" + r"'\xa9'",  # a UTF-8 sequence split across a continued literal
    r"E'\uD83D\uDE00 \U0001F600 \u00e9'",  # a surrogate pair combined
    r"E'\401'",  # the low byte of an octal escape: \001
    r"E'\400'",  # \000: refused
    r"E'\777'",
    r"E'\U00110000'",
    r"E'\uD800'",
    r"E'\uDE00'",
    r"E'\uD83D\u0041'",
    r"E'\uD83Dx'",
    r"E'\u0000'",
    r"E'\u12'",
    r"E'\xc3'",
    r"E'\xc3\u00e9'",
    "'ab'\n'cd'",
    "'ab' -- a comment\n  'cd'\n'e''f'",
    r"U&'\0041 d!0061t!+000061' UESCAPE '!'",
    r"U&'\0041\\ \D83D\DE00'",
    "U&'a'\n'\\0042'",
    "$tag1$x ' $$ y$tag1$",
    "N'national'",
    "TEXT 'typed'",
]


def _postgresql_reads(literal: str):
    """What PostgreSQL makes of the literal: its text, or the exception class if it refuses it."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT ({literal})::text")  # test oracle: a literal, no table touched
            return cursor.fetchone()[0]
    except DatabaseError:
        return DatabaseError


@pytest.mark.django_db
@pytest.mark.parametrize("literal", LITERALS)
def test_every_literal_reads_as_postgresql_reads_it(tmp_path, literal):
    # given a file inserting a role whose description is the literal
    source = tmp_path / "role.sql"
    source.write_text("-- written by hand\n" + ROLE_INSERT.format(literal))
    expected = _postgresql_reads(literal)
    state = fingerprint()
    if expected is DatabaseError:
        # then where PostgreSQL refuses it, the import is one line naming the line, and nothing changes
        with pytest.raises(ImportFormatError) as caught:
            import_data(input_path=source, fmt="sql")
        assert "role.sql: line " in str(caught.value) and "\n" not in str(caught.value)
        assert fingerprint() == state
    else:
        # and otherwise the role holds exactly what PostgreSQL would store
        import_data(input_path=source, fmt="sql")
        assert Role.objects.get().description == expected


PSQL_ACCEPTS = """-- end of the header comments: only a comment
/* a /* nested */ comment */
SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', 'public', false);
SET application_name = 'a;b'; SET application_name = $x$;$x$; SET application_name = E'\\';';
; ;
INSERT INTO core_role (id, name, description, created_at) VALUES
(101, /* c */ 'r101', 'x', '2025-01-01 00:00:00+00'), -- c
(102, 'r102', /* /* nested */ */ 'y', '2025-01-01 00:00:00+00') /* before */ ;
-- end of the roles
INSERT /* c */ INTO "public" . "core_role" AS r ("id", name, -- c
  description, created_at) OVERRIDING SYSTEM VALUE
  VALUES (103, 'r103', 'z', TIMESTAMP WITH TIME ZONE '2025-01-01 00:00:00+00');
INSERT INTO core_concept (id, code, name, created_at, updated_at)
  VALUES (7, 'C7', 'Seven', '2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00');
insert into core_role values (104, 'r104', 'w', '2025-01-01 00:00:00+00')"""
PSQL_ACCEPTS_CONCEPT = PSQL_ACCEPTS[PSQL_ACCEPTS.index("INSERT INTO core_concept") : PSQL_ACCEPTS.index("insert into")]


@pytest.mark.django_db
def test_comments_empty_statements_and_session_statements_as_psql_reads_them(tmp_path):
    source = tmp_path / "hand.sql"
    source.write_text(PSQL_ACCEPTS)
    import_data(input_path=source, fmt="sql")
    assert list(Role.objects.order_by("pk").values_list("pk", "name", "description")) == [
        (101, "r101", "x"), (102, "r102", "y"), (103, "r103", "z"), (104, "r104", "w"),
    ]  # fmt: skip
    assert Concept.objects.get(pk=7).description == ""  # an omitted column: the field's default


@pytest.mark.django_db
def test_default_and_omitted_columns_are_fields_left_out(tmp_path):
    source = tmp_path / "defaults.sql"
    source.write_text(
        "INSERT INTO core_role (name, description, created_at) VALUES ('a', DEFAULT, '2025-01-01 00:00:00+00');\n"
        "INSERT INTO core_role (id, name, description, created_at) VALUES (DEFAULT, 'b', 'd', DEFAULT);\n"
        "INSERT INTO core_role (id, name, description, created_at) OVERRIDING USER VALUE VALUES (5, 'c', 'd', DEFAULT);"
    )
    records = [record for _, _, record in read_sql(source)]
    assert records == [
        {"name": "a", "created_at": "2025-01-01 00:00:00+00"}, {"name": "b", "description": "d"},
        {"name": "c", "description": "d"},
    ]  # fmt: skip


@pytest.fixture
def exported(tmp_path):
    seed(scale=0.1)
    target = tmp_path / "export.sql"
    export_data(entities=["roles"], output=target, fmt="sql")
    return target


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("edit", ["drop a row", "repeat a row"])
def test_an_export_whose_rows_do_not_match_its_end_line_is_refused(exported, edit):
    lines = exported.read_text().splitlines(keepends=True)
    inserts = [number for number, line in enumerate(lines) if line.startswith("INSERT")]
    if edit == "drop a row":
        del lines[inserts[-1]]
    else:
        lines.insert(inserts[-1], lines[inserts[-1]].replace("VALUES (", "VALUES (9999").replace("'", "'x", 1))
    exported.write_text("".join(lines))
    state = fingerprint()
    with pytest.raises(ImportFormatError) as caught:
        import_data(input_path=exported, fmt="sql")
    assert "the file looks edited or truncated" in str(caught.value) and "\n" not in str(caught.value)
    assert fingerprint() == state


@pytest.mark.django_db
def test_json_values_are_exported_as_json_text_that_psql_and_import_read_back(tmp_path):
    # given audit logs holding a JSON string, JSON null, a number, a boolean and an exact decimal
    values = ["str", None, 5, True, {"a": "it's"}]
    for value in values:
        AuditLog.objects.create(
            action="update", entity_type="core.role", timestamp="2025-01-01T00:00:00Z",
            changes=Value(value, output_field=JSONField()),
        )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, changes::text FROM core_auditlog ORDER BY id")
        before = cursor.fetchall()
    target = tmp_path / "logs.sql"
    export_data(entities=["audit_logs"], output=target, fmt="sql")
    text = target.read_text()
    assert "'\"str\"'" in text and "'null'" in text and "'5'" in text and "'true'" in text
    # when PostgreSQL itself runs the file's INSERTs (what psql -f does) ...
    AuditLog.objects.all().delete()
    with connection.cursor() as cursor:
        for line in text.splitlines():
            if line.startswith("INSERT"):
                cursor.execute(line.replace("%", "%%"))
        cursor.execute("SELECT id, changes::text FROM core_auditlog ORDER BY id")
        assert cursor.fetchall() == before
    # ... and when import_data reads it: the same values
    AuditLog.objects.all().delete()
    import_data(input_path=target, fmt="sql")
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, changes::text FROM core_auditlog ORDER BY id")
        assert cursor.fetchall() == before


@pytest.mark.django_db
@pytest.mark.parametrize("dry_run", [False, True])
def test_rows_without_an_id_get_fresh_ids_as_psql_would_give_them(tmp_path, dry_run):
    # psql takes ids from the sequence; the import gives ids past the table's and the file's largest
    seed(scale=0.02)
    largest = Role.objects.order_by("-pk").first().pk
    source = tmp_path / "new.sql"
    source.write_text(
        "INSERT INTO core_role (name, description, created_at) VALUES ('n1', 'a', '2025-01-01 00:00:00+00'),"  # noqa: S608
        " ('n2', 'b', '2025-01-01 00:00:00+00');\n"
        f"INSERT INTO core_role (id, name, description, created_at) VALUES (DEFAULT, 'n3', 'c', DEFAULT),"
        f" ({largest + 100}, 'n4', 'd', DEFAULT);\n"
    )
    state = fingerprint()
    result = import_data(input_path=source, fmt="sql", dry_run=dry_run)
    assert [(item.entity, item.created) for item in result.entities] == [("roles", 4)]
    if dry_run:
        assert fingerprint() == state
        return
    new = dict(Role.objects.filter(name__in=["n1", "n2", "n3", "n4"]).values_list("name", "pk"))
    assert new["n4"] == largest + 100 and min(new["n1"], new["n2"], new["n3"]) > largest + 100
    assert len(set(new.values())) == 4
    assert Role.objects.create(name="made later").pk > max(new.values())  # the sequence moved past them


def _psql_stores(source) -> dict[str, list[tuple]]:
    """The rows psql itself stores running the file (stopping at its first error), then removed again."""
    settings = connection.settings_dict
    args = [tool_path("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", settings["HOST"], "-p", str(settings["PORT"])]
    args += ["-U", settings["USER"], "-d", settings["NAME"], "-f", str(source)]
    subprocess.run(args, capture_output=True, env={**os.environ, "PGPASSWORD": settings["PASSWORD"] or ""})  # noqa: S603
    stored = domain_rows()
    wipe_domain()
    return stored


ROLE_AT = "INSERT INTO {table} (id, name, description, created_at) VALUES (1, 'r', {}, {});\n"  # noqa: S608


def _role(description: str = "'d'", created_at: str = "'2025-01-01 00:00:00+00'", table: str = "core_role") -> str:
    return ROLE_AT.format(description, created_at, table=table)


PSQL_CASES = {
    # what the file's session statements change: psql stores another value than the text says, or nothing
    "backslashes as escapes": ("SET standard_conforming_strings = off;\n" + _role(r"'a\nb \\ c'"), "refused"),
    "a string ending in a backslash": (
        "SET standard_conforming_strings = off;\nSELECT 'a\\'; " + _role("$$smuggled$$") + "--';\n",
        "refused",
    ),
    "another time zone": (
        "SET timezone = 'America/New_York';\n" + _role(created_at="'2025-01-01 00:00:00'"),
        "refused",
    ),
    "another encoding": ("SET client_encoding = 'LATIN1';\n" + _role("'café'"), "refused"),
    "another date order": ("SET datestyle = 'ISO, DMY';\n" + _role(created_at="'02/01/2025 10:00:00+00'"), "refused"),
    "set_config of the time zone": (
        "SELECT pg_catalog.set_config('timezone', 'Asia/Tokyo', false);\n" + _role(created_at="'2025-01-01'"),
        "refused",
    ),
    "an empty search_path": ("SELECT pg_catalog.set_config('search_path', '', false);\n" + _role(), "refused"),
    "rolled back": ("BEGIN;\n" + _role() + "ROLLBACK;\n", "refused"),
    "never committed": ("BEGIN;\n" + _role(), "refused"),
    "rolled back to a savepoint": (
        "BEGIN;\nSAVEPOINT s;\n" + _role() + "ROLLBACK TO SAVEPOINT s;\nCOMMIT;\n",
        "refused",
    ),
    "a length cast": (_role("'abcdef'::varchar(3)"), "refused"),
    "a date cast into a timestamp": (_role(created_at="'2025-01-01 10:30:00+00'::date"), "refused"),
    "a timestamp without time zone": (_role(created_at="TIMESTAMP '2025-01-01 10:30:00+05'"), "refused"),
    "a rounding integer cast": (_role().replace("(1,", "(1.6::int,"), "refused"),
    # what changes nothing: the same rows as psql stores
    "a dump's settings": (
        "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n"
        "SELECT pg_catalog.set_config('search_path', '', false);\nSET extra_float_digits = 3;\nSET timezone = 'UTC';\n"
        + _role(r"'a\nb'", created_at="'2025-01-01 00:00:00'", table="public.core_role"),
        "same",
    ),
    "casts that change nothing": (
        _role("'x'::text", "'2025-01-01 10:30:00+05'::timestamp with time zone").replace("(1,", "(1::bigint,"),
        "same",
    ),
    "a national character literal": (_role("N'padded  '"), "same"),
    "committed": ("BEGIN;\n" + _role() + "COMMIT;\n", "same"),
    # (without its concept, whose omitted NOT NULL description psql refuses and the import fills in)
    "comments, empty and session statements": (PSQL_ACCEPTS.replace(PSQL_ACCEPTS_CONCEPT, "") + ";\n", "same"),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", PSQL_CASES)
def test_the_import_stores_what_psql_stores_or_refuses_the_file(tmp_path, case):
    # given a file, and what psql itself stores running it
    text, expected = PSQL_CASES[case]
    source = tmp_path / "case.sql"
    source.write_text(text)
    stored = _psql_stores(source)
    # when it is imported
    try:
        import_data(input_path=source, fmt="sql")
    except ImportFormatError as refusal:
        outcome, message = "refused", str(refusal)
    else:
        outcome, message = "same" if domain_rows() == stored else "different", ""
    # then the import stores exactly psql's rows, or refuses the file in one line naming the line
    assert outcome == expected
    assert outcome != "refused" or ("case.sql: line " in message and "\n" not in message)
