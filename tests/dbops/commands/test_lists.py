"""Every list command stops at --limit (default 50, 0 for all): the text says how many more there are,
the JSON carries the total. On the real PostgreSQL, with real catalog rows."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.utils import timezone

from dbops.models import BackupRecord, Snapshot
from tests.commands import command_error, run_command
from tests.dbops.instrumentation.analyzer_data import READS_PG_STAT_STATEMENTS

pytestmark = [pytest.mark.django_db, READS_PG_STAT_STATEMENTS]


def catalog_rows(count: int) -> list[BackupRecord]:
    """`count` failed catalog rows, one minute apart, newest last (a listing needs no artifacts)."""
    start = timezone.now() - timedelta(days=1)
    return BackupRecord.objects.bulk_create(
        BackupRecord(
            started_at=start + timedelta(minutes=number),
            status=BackupRecord.Status.FAILED,
            engine="postgresql",
            database_name="app",
            format=BackupRecord.Format.CUSTOM,
            tag=f"row-{number}",
        )
        for number in range(count)
    )


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.split() and line.split()[0].isdigit()]


def test_list_backups_stops_at_50_by_default_and_says_how_many_more():
    catalog_rows(53)
    text = run_command("list_backups")
    rows = table_rows(text)
    assert len(rows) == 50 and "row-52" in rows[0] and "row-3" in rows[-1]  # the newest 50
    assert text.rstrip().endswith("… and 3 more records (--limit 0 lists all).")
    assert len(table_rows(run_command("list_backups", "--limit", "0"))) == 53


def test_list_backups_limit_in_text_json_and_quiet():
    catalog_rows(5)
    text = run_command("list_backups", "--limit", "2")
    assert len(table_rows(text)) == 2 and "… and 3 more records" in text
    listed = json.loads(run_command("list_backups", "--json", "--limit", "2"))
    assert (listed["total"], listed["limit"]) == (5, 2)
    assert [item["tag"] for item in listed["backups"]] == ["row-4", "row-3"]
    # --quiet keeps stdout to the rows (for scripts); how many were left out goes to stderr
    errors = StringIO()
    quiet = run_command("list_backups", "--quiet", "--limit", "2", stderr=errors)
    assert len(quiet.splitlines()) == 2 and "more" not in quiet
    assert "… and 3 more records" in errors.getvalue()
    # the filter is counted, not the whole catalog
    assert json.loads(run_command("list_backups", "--json", "--status", "succeeded"))["total"] == 0
    # nothing cut: no line about more
    assert "more" not in run_command("list_backups", "--limit", "5")


@pytest.mark.parametrize("bad", ["-1", "many"])
def test_a_bad_limit_is_refused_by_the_parser(bad):
    command_error("list_backups", "--limit", bad, match="argument --limit: invalid count")


def test_list_snapshots_stops_at_its_limit():
    now = timezone.now()
    for number in range(4):
        Snapshot.objects.create(
            id=f"snapshot_limit_{number}", created_at=now - timedelta(hours=4 - number), tables=["core_role"]
        )
    text = run_command("list_snapshots", "--limit", "3")
    header, *rows = text.splitlines()
    assert header.split() == ["id", "created", "status", "rows", "size", "checksum", "import", "tables"]
    assert [line.split()[0] for line in rows[:3]] == [f"snapshot_limit_{n}" for n in (3, 2, 1)]
    # each column starts where its header does
    assert rows[0].index("core_role") == header.index("tables") and rows[0][header.index("import")] == "-"
    assert "… and 1 more snapshots (--limit 0 lists all)." in text
    listed = json.loads(run_command("list_snapshots", "--json", "--limit", "3"))
    assert (listed["total"], listed["limit"], len(listed["snapshots"])) == (4, 3, 3)
    assert len(json.loads(run_command("list_snapshots", "--json", "--limit", "0"))["snapshots"]) == 4


def test_stats_lists_the_largest_tables_and_indexes_up_to_the_limit(backup_dir):
    everything = json.loads(run_command("stats", "--json", "--limit", "0"))
    assert len(everything["tables"]) == everything["tables_total"] > 3
    cut = json.loads(run_command("stats", "--json", "--limit", "3"))
    assert cut["limit"] == 3 and cut["tables_total"] == everything["tables_total"]
    assert [table["name"] for table in cut["tables"]] == [table["name"] for table in everything["tables"][:3]]
    sizes = [table["total_bytes"] for table in everything["tables"]]
    assert sizes == sorted(sizes, reverse=True)  # largest first, so the cut keeps them
    assert len(cut["indexes"]) == 3 and cut["indexes_total"] == len(everything["indexes"]) > 3
    text = run_command("stats", "--limit", "3")
    assert f"… and {everything['tables_total'] - 3} more tables (--limit 0 lists all)." in text
    assert f"… and {everything['indexes_total'] - 3} more indexes" in text


def test_analyze_query_slow_stops_at_its_limit_and_counts_the_rest():
    run_command("stats")  # a few statements more for pg_stat_statements
    payload = json.loads(run_command("analyze_query", "--slow", "--limit", "1", "--json"))
    assert payload["limit"] == 1 and len(payload["statements"]) == 1 and payload["total"] > 1
    text = run_command("analyze_query", "--slow", "--limit", "1")
    assert text.count("\n#") + text.startswith("#") == 1  # one analysed statement
    assert "more captured statements (--limit 0 lists all)." in text
