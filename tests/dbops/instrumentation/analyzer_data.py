"""A real table of tens of thousands of rows for the analyzer tests, ANALYZEd like production."""

from __future__ import annotations

import pytest
from django.db import connection

ROWS = 30_000

# pg_stat_statements is one table for the whole server, and large_files_table resets it: under
# pytest-xdist (--dist loadgroup) the modules that reset or rank it run in one worker, one at a time.
READS_PG_STAT_STATEMENTS = pytest.mark.xdist_group("pg_stat_statements")


@pytest.fixture
def large_files_table():
    """30,000 stored files, every one of entity_type 'concept' (so its index is useless), then ANALYZE."""
    with connection.cursor() as cursor:
        # A fresh pg_stat_statements, so the statements a test issues rank among the top ones whatever ran before.
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        if cursor.fetchone():
            cursor.execute("SELECT pg_stat_statements_reset()")
        cursor.execute(
            "INSERT INTO core_storedfile (name, storage_path, content_type, size, sha256, entity_type, entity_id,"
            " created_at) SELECT 'f' || i, 'files/' || i, 'image/png', i, md5(i::text) || md5(i::text),"
            " 'concept', i %% 500, now() FROM generate_series(1, %s) AS i",
            [ROWS],
        )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # fire deferred FK checks so DDL can follow
        cursor.execute("ANALYZE core_storedfile")
    return ROWS


def capture_sha256_lookup(times: int = 50) -> None:
    """Runs the ORM's sha256 lookup often enough that pg_stat_statements keeps it: the shared server's
    statement table is full, and each eviction drops the least-used entries (a single call is one)."""
    from multipult.core.models import StoredFile

    for _ in range(times):
        list(StoredFile.objects.filter(sha256="needle").values_list("id"))


AUDIT_ROWS = 60_000


@pytest.fixture
def large_audit_table():
    """60,000 audit rows: 45% 'update' (an index on action is useless), 'restore' rare (0.5%), a jsonb
    `changes` with a unique 'reason' per row, one row per minute back from now; then ANALYZE."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO core_auditlog (action, entity_type, entity_id, timestamp, changes)"
            " SELECT CASE WHEN i %% 200 = 0 THEN 'restore' WHEN i %% 20 < 9 THEN 'update' ELSE 'create' END,"
            " 'concept', i %% 1000, now() - i * interval '1 minute',"
            " jsonb_build_object('field', 'f' || (i %% 7), 'reason', md5(i::text))"
            " FROM generate_series(1, %s) AS i",
            [AUDIT_ROWS],
        )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # fire deferred FK checks so DDL can follow
        # ANALYZE samples 300 x the statistics target rows: at 200 that is every row, so the statistics, and
        # the plans and advice the tests assert, are the same each run (at 100, a random half of them).
        cursor.execute("SET default_statistics_target = 200")
        cursor.execute("ANALYZE core_auditlog")
        cursor.execute("RESET default_statistics_target")
    return AUDIT_ROWS


# The analyzer plans a statement once per candidate index, and the workload once per (index, statement):
# repeats of the engine's plan statements that are its design, not an N+1.
PLANS_REPEAT_ON_PURPOSE = pytest.mark.n_plus_one_allow(
    "dbops/engines/postgresql/introspection.py:*", "dbops/engines/postgresql/indexes.py:*"
)
