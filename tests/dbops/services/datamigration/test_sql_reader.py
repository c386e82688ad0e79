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
