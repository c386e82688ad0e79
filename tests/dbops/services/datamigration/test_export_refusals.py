"""export_data on stored data Python cannot read, on filters no row can meet, and what its run log keeps."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from dbops.models import DataTransferRun
from dbops.services.datamigration.exports import export_data
from tests.commands import command_error, run_command
from tests.dbops.services.datamigration.helpers import seed


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["json", "csv", "sql", "jsonl-transformed"])
@pytest.mark.parametrize("anonymize", [False, True])
def test_a_json_value_nested_deeper_than_python_reads_is_one_line_naming_the_record(tmp_path, fmt, anonymize):
    seed(scale=0.02)
    with connection.cursor() as cursor:  # jsonb takes it; Python's parser stops at about a thousand levels
        cursor.execute(
            "UPDATE core_auditlog SET changes = (repeat('[', 3000) || '\"x\"' || repeat(']', 3000))::jsonb "
            "WHERE id = (SELECT min(id) FROM core_auditlog)"
        )
    runs = DataTransferRun.objects.count()
    target = tmp_path / ("out.zip" if fmt == "csv" else "out")
    args = ["export_data", "--entities", "audit_logs", "--output", str(target)]
    transformed = fmt == "jsonl-transformed"  # row by row in Python
    args += ["--format", "jsonl", "--transform", "normalize_emails"] if transformed else ["--format", fmt]
    message = command_error(*args, *(["--anonymize"] if anonymize else []))
    first = connection.ops.quote_name("core_auditlog")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(id) FROM {first}")  # noqa: S608
        (deep_id,) = cursor.fetchone()
    assert f"audit_logs id {deep_id}, field 'changes'" in message and "nests deeper" in message
    assert not target.exists() and list(tmp_path.iterdir()) == []
    assert DataTransferRun.objects.count() == runs


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["jsonl", "json"])
@pytest.mark.parametrize("anonymize", [False, True])
def test_a_filter_past_the_range_of_an_integer_column_exports_no_rows(tmp_path, fmt, anonymize):
    seed(scale=0.02)
    target = tmp_path / f"out.{fmt}"
    result = export_data(
        entities=["users"], output=target, fmt=fmt, anonymize=anonymize, where=["users.id=99999999999999999999"]
    )
    assert {item.entity: item.rows for item in result.entities}["users"] == 0
    assert target.exists()


@pytest.mark.django_db
def test_the_run_log_keeps_a_filter_without_its_value(tmp_path):
    seed(scale=0.02)
    with connection.cursor() as cursor:
        cursor.execute("SELECT email FROM core_user ORDER BY id LIMIT 1")
        (email,) = cursor.fetchone()
    target = tmp_path / "out.jsonl"
    run_command(
        "export_data", "--entities", "users", "--format", "jsonl", "--anonymize", "--output", str(target),
        "--where", f"users.email={email}", "--where", "last_name=Watts",
    )  # fmt: skip
    run = DataTransferRun.objects.latest("pk")
    assert run.options["where"] == ["users.email=…", "last_name=…"]
    assert email not in json.dumps(run.options) and "Watts" not in json.dumps(run.options)
