"""import_data --format sql reads any INSERT psql would accept for the entities' tables (pg_dump's own
--inserts output included), never executing the file; anything else is one line naming it."""

from __future__ import annotations

import os
import subprocess

import pytest
from django.db import connection

from dbops.engines.postgresql.tools import tool_path
from dbops.exceptions import ImportFormatError
from dbops.services.datamigration.imports import import_data
from multipult.core.models import AuditLog, Concept, Role
from tests.dbops.services.datamigration.helpers import ROLE_INSERT, domain_rows, fingerprint, seed, wipe_domain

TABLES = ["core_role", "core_user", "core_user_roles", "core_concept", "core_dictionary", "core_dictionaryentry",
          "core_storedfile", "core_auditlog"]  # fmt: skip


def _pg_dump(target, *options: str) -> None:
    settings = connection.settings_dict
    args = [tool_path("pg_dump"), "--data-only", *options, "-h", settings["HOST"], "-p", str(settings["PORT"])]
    args += ["-U", settings["USER"], *[f"--table={table}" for table in TABLES], "-f", str(target), settings["NAME"]]
    subprocess.run(args, check=True, env={**os.environ, "PGPASSWORD": settings["PASSWORD"] or ""})  # noqa: S603


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "options", [("--inserts",), ("--column-inserts",), ("--column-inserts", "--rows-per-insert=100")]
)
def test_pg_dump_inserts_import_back_exactly(tmp_path, options):
    # given seeded data dumped by pg_dump itself as INSERT statements
    seed(scale=0.1)
    AuditLog.objects.create(
        action="update", entity_type="core.role", timestamp="2025-01-01T00:00:00Z",
        changes={"note": "it's \\ \"quoted\"", "n": [1, 2.5]}, ip_address="2001:db8::1",
    )  # fmt: skip
    before = domain_rows()
    dump = tmp_path / "dump.sql"
    _pg_dump(dump, *options)
    assert "INSERT INTO public." in dump.read_text() and "SET " in dump.read_text()
    # when the tables are emptied and the dump imported
    wipe_domain()
    import_data(input_path=dump, fmt="sql", allow_privileged=True)
    # then every row is back as it was
    assert domain_rows() == before


HAND_WRITTEN = """
/* written by hand */
set client_encoding = 'UTF8';
begin;
insert into core_role (id, name, description, created_at) values
  (1, 'admin', E'line one\\nline two \\'quoted\\'', TIMESTAMP WITH TIME ZONE '2025-01-02 03:04:05+00'),
  (2, $$viewer$$, $tag$it's $$ fine$tag$, '2025-01-02T03:04:05Z'::timestamp with time zone);  -- two rows
INSERT INTO "public"."core_concept" ("name", ID, Code, description, created_at, updated_at)
  VALUES ('Seven', 7, 'C7', DEFAULT, '2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00'::timestamptz);
commit;
"""


@pytest.mark.django_db
def test_hand_written_inserts_in_any_case_with_casts_and_quoting(tmp_path):
    source = tmp_path / "hand.sql"
    source.write_text(HAND_WRITTEN)
    import_data(input_path=source, fmt="sql")
    admin, viewer = Role.objects.order_by("pk")
    assert admin.description == "line one\nline two 'quoted'" and admin.created_at.year == 2025
    assert (viewer.name, viewer.description) == ("viewer", "it's $$ fine")
    concept = Concept.objects.get(pk=7)
    assert (concept.code, concept.name, concept.description) == ("C7", "Seven", "")  # DEFAULT: the field's default


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("INSERT INTO core_role (id, name) VALUES (1, 'a');\nUPDATE core_role SET name = 'b';", "line 2: only INSERT"),
        ("INSERT INTO core_role (id, name) VALUES (1, 'a') ON CONFLICT DO NOTHING;", "(ON CONFLICT is not read)"),
        ("COPY core_role (id, name) FROM stdin;\n1\ta\n\\.\n", "is not an export_data file (no 'multipult-export'"),
        (
            "INSERT INTO core_role (id, name) VALUES (1, 'a');\nCOPY core_role FROM stdin;",
            "dump the data as INSERT statements",
        ),
        ("INSERT INTO nowhere (id) VALUES (1);", "unknown table 'nowhere'"),
        ("INSERT INTO core_role (id, name) VALUES (1, 'a', 3);", "3 values for 2 columns"),
        ("INSERT INTO core_role (id, name) VALUES (1, 'a'", "malformed or truncated VALUES list"),
        ("INSERT INTO core_role (id, name) VALUES (1, now());", "malformed or truncated VALUES list"),
        # What psql refuses too
        (ROLE_INSERT.format("'x'").replace("core_role", "evil.core_role"), "evil.core_role is not the imported one"),
        (ROLE_INSERT.format("'x'").replace("core_role", "db.public.core_role"), "a name with a database is not read"),
        (ROLE_INSERT.format("'x' /* not closed"), "line 1: unterminated /* comment"),
        (ROLE_INSERT.format("$a$x"), "unterminated dollar-quoted string"),
        (
            ROLE_INSERT.format("'x'") + "INSERT INTO core_role (id, name) VALUES (2, 'b'), (3);",  # noqa: S608
            "line 2: VALUES lists must",
        ),
        ("INSERT INTO core_role (id, id) VALUES (1, 1);", "column 'id' specified more than once"),
        ("INSERT INTO core_role (id, name) SELECT 1, 'a';", "only INSERT ... VALUES (...) statements are read"),
        # Session statements that change how the shell reads the values after them
        ("SET standard_conforming_strings = off;\n" + ROLE_INSERT.format("'a\\nb'"), "line 1: SET standard_conf"),
        (
            "SET standard_conforming_strings = off;\nSELECT 'a\\'; " + ROLE_INSERT.format("$$smuggled$$") + "--';",
            "line 1: SET standard_conforming_strings = off is not read",
        ),
        ("set session TIME ZONE 'America/New_York';\n" + ROLE_INSERT.format("'x'"), "SET timezone = America/New_York"),
        ("SET LOCAL timezone TO 'Europe/Paris';", "SET timezone = Europe/Paris is not read"),
        ("SET client_encoding = 'LATIN1';\n" + ROLE_INSERT.format("'x'"), "SET client_encoding = LATIN1 is not"),
        ("SET NAMES 'LATIN1';", "SET client_encoding = LATIN1 is not read"),
        ("SET datestyle = 'ISO, DMY';", "SET datestyle = ISO, DMY is not read"),
        ("SET intervalstyle = sql_standard;", "SET intervalstyle = sql_standard is not read"),
        ("SET work_mem = '1GB';", "SET work_mem is not read"),
        ("SET ROLE other;", "SET ROLE is not read"),
        ("RESET standard_conforming_strings;", "RESET standard_conforming_strings is not read"),
        ("RESET ALL;", "RESET ALL is not read"),
        ("SELECT pg_catalog.set_config('standard_conforming_strings', 'off', false);", "line 1: SET standard_conf"),
        ("SELECT set_config('TimeZone', 'Asia/Tokyo', true);", "SET timezone = Asia/Tokyo is not read"),
        ("SELECT 1;", "only a dump's set_config and setval calls are read"),
        ("SELECT 'a', pg_catalog.set_config('timezone', 'UTC', false);", "only a dump's set_config and setval"),
        ("\\encoding LATIN1\n" + ROLE_INSERT.format("'x'"), "line 1: the meta-command \\encoding is not read"),
        ("BEGIN \\encoding LATIN1\n;", "line 1: a meta-command inside a statement is not read"),
        ("SET search_path = other, public;\n" + ROLE_INSERT.format("'x'"), "line 2: table core_role: the search_path"),
        (
            "SELECT pg_catalog.set_config('search_path', '', false);\n" + ROLE_INSERT.format("'x'"),
            "line 2: table core_role: the search_path set on line 1 names no schema",
        ),
        # Statements that undo the rows before them, or leave them uncommitted
        ("BEGIN;\n" + ROLE_INSERT.format("'x'") + "ROLLBACK;", "line 3: ROLLBACK is not read"),
        ("BEGIN;\n" + ROLE_INSERT.format("'x'") + "abort;", "line 3: ABORT is not read"),
        ("BEGIN;\nSAVEPOINT s;\n" + ROLE_INSERT.format("'x'") + "ROLLBACK TO SAVEPOINT s;\nCOMMIT;", "ROLLBACK"),
        ("BEGIN;\n" + ROLE_INSERT.format("'x'"), "line 1: BEGIN without COMMIT"),
        # Casts that could change the value
        (ROLE_INSERT.format("'abcdef'::varchar(3)"), "the cast ::varchar(3) is not read"),
        (ROLE_INSERT.format("'x'::char"), "the cast ::char into column description"),
        (ROLE_INSERT.format("'x'::public.text"), "the cast ::public.text into column description"),
        (ROLE_INSERT.format("'{x}'::text[]"), "the cast ::text[] is not read"),
        (
            ROLE_INSERT.format("'x'").replace("'2025-01-01 00:00:00+00'", "'2025-01-01 10:30:00+00'::date"),
            "the cast ::date into column created_at (timestamp with time zone) is not read",
        ),
        (
            ROLE_INSERT.format("'x'").replace("'2025-01-01 00:00:00+00'", "TIMESTAMP '2025-01-01 10:30:00+05'"),
            "the cast ::timestamp into column created_at",
        ),
        (ROLE_INSERT.format("'x'").replace("(1,", "(2.5::int,"), "::int of a number that is no integer"),
        (ROLE_INSERT.format("'x'").replace("(1,", "('1'::text,"), "the cast ::text into column id (integer)"),
        (ROLE_INSERT.format("'x'").replace("(1,", "(40000::smallint,"), "40000 is out of range for ::smallint"),
        (ROLE_INSERT.format("5::text"), "the cast ::text of a number is not read"),
        (ROLE_INSERT.format("N'x'::varchar(2)"), "the cast ::varchar(2) is not read"),
        (ROLE_INSERT.format("DEFAULT::text"), "DEFAULT takes no cast"),
    ],
)
def test_anything_else_is_one_line_and_changes_nothing(tmp_path, text, says):
    source = tmp_path / "bad.sql"
    source.write_text(text)
    state = fingerprint()
    with pytest.raises(ImportFormatError) as caught:
        import_data(input_path=source, fmt="sql")
    assert says in str(caught.value) and "\n" not in str(caught.value)
    assert fingerprint() == state


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text", ["", "  \n\n", "-- only a comment\n/* and another */\n", "SET client_encoding = 'UTF8';\nBEGIN;\nCOMMIT;\n"]
)
def test_a_file_without_an_insert_statement_is_refused_as_empty(tmp_path, text):
    source = tmp_path / "empty.sql"
    source.write_text(text)
    state = fingerprint()
    with pytest.raises(ImportFormatError) as caught:
        import_data(input_path=source, fmt="sql")
    assert str(caught.value) == f"{source} holds no INSERT statement."
    assert fingerprint() == state


DUMP_SESSION = """SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;
SET default_tablespace = '';
SET default_table_access_method = heap;
SET extra_float_digits = 3;
SET LOCAL TIME ZONE 'UTC';
SET SESSION datestyle TO 'ISO, MDY';
SET NAMES 'utf-8';
SET search_path = public, pg_catalog;
RESET statement_timeout;
INSERT INTO core_role (id, name, description, created_at) VALUES
  (1, 'r1'::text, 'plain'::character varying, '2025-01-01 10:30:00+05'::timestamp with time zone),
  (2::bigint, 'r2'::pg_catalog.varchar, N'padded  ', TIMESTAMPTZ '2025-01-01 00:00:00'),
  ('3'::integer, 'r3', ''::text, '2025-01-01 00:00:00+00'::"timestamptz"::timestamptz);
INSERT INTO public.core_auditlog (id, action, entity_type, entity_id, changes, timestamp, ip_address) VALUES
  (1, 'update', 'core.role', 1::int8, '{"a": [1, 2.50]}'::jsonb, '2025-01-01 00:00:00+00', '10.0.0.1'::inet),
  (2, 'update', 'core.role', 1, '"s"'::json, '2025-01-01 00:00:00+00', NULL::inet);
SELECT pg_catalog.setval('public.core_role_id_seq', 3, true);
"""


@pytest.mark.django_db
def test_a_dumps_session_settings_and_casts_that_change_nothing_are_read(tmp_path):
    source = tmp_path / "dump.sql"
    source.write_text(DUMP_SESSION)
    import_data(input_path=source, fmt="sql")
    assert list(Role.objects.order_by("pk").values_list("pk", "name", "description")) == [
        (1, "r1", "plain"), (2, "r2", "padded"), (3, "r3", ""),
    ]  # fmt: skip
    assert [role.created_at.isoformat() for role in Role.objects.order_by("pk")] == [
        "2025-01-01T05:30:00+00:00", "2025-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00",
    ]  # fmt: skip
    assert list(AuditLog.objects.order_by("pk").values_list("changes", "ip_address")) == [
        ({"a": [1, 2.5]}, "10.0.0.1"), ("s", None),
    ]  # fmt: skip
