"""analyze_query: the command edge (argument checks, text and JSON output, one message per bad input)."""

from __future__ import annotations

import json

import pytest

from multipult.core.models import StoredFile
from tests.commands import command_error, run_command
from tests.dbops.instrumentation.analyzer_data import (
    READS_PG_STAT_STATEMENTS,
    ROWS,
    capture_sha256_lookup,
    large_files_table,  # noqa: F401  (fixture)
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("large_files_table"), READS_PG_STAT_STATEMENTS]


def test_text_output_has_tree_marker_and_advice():
    output = run_command("analyze_query", "SELECT id FROM core_storedfile WHERE sha256 = 'x'", "--analyze")

    assert "-> Seq Scan on core_storedfile" in output
    assert "<== costliest" in output
    assert 'CREATE INDEX CONCURRENTLY "storedfile_sha256_idx" ON "core_storedfile" ("sha256");' in output
    assert 'models.Index(fields=["sha256"], name="storedfile_sha256_idx")  # in core.StoredFile.Meta.indexes' in output


def test_json_output():
    payload = json.loads(run_command("analyze_query", "SELECT id FROM core_storedfile WHERE sha256 = 'x'", "--json"))

    assert payload["analyzed"] is False
    assert payload["plan"]["node_type"] == "Seq Scan"
    assert payload["suggestions"][0]["columns"] == ["sha256"]
    assert payload["raw_plan"][0]["Plan"]["Relation Name"] == "core_storedfile"


def test_slow_json_lists_captured_statements():
    capture_sha256_lookup()
    payload = json.loads(run_command("analyze_query", "--slow", "--limit", "20", "--json"))

    assert "pg_stat_statements" not in payload["sources_unavailable"]
    assert any('"core_storedfile"."sha256"' in item["sql"] for item in payload["statements"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give one SQL statement, --slow, --workload or --unused"),
        (("SELECT 1", "--slow"), "Give one SQL statement, --slow, --workload or --unused"),
        (("DELETE FROM core_storedfile; DROP TABLE core_storedfile",), "exactly one statement"),
        (("TRUNCATE core_storedfile",), "Only "),
        (("SELECT * FROM no_such_table",), 'relation "no_such_table" does not exist'),
        (("--slow", "--limit", "-1"), "argument --limit: invalid count"),
        (("SELECT 1", "--min-rows", "-1"), "--min-rows must be 0 or more"),
    ],
)
def test_bad_input_is_one_message_and_changes_nothing(args, message):
    command_error("analyze_query", *args, "--analyze", match=message)
    assert StoredFile.objects.count() == ROWS
