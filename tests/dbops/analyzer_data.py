"""A real table of tens of thousands of rows for the analyzer tests, ANALYZEd like production."""

from __future__ import annotations

import pytest
from django.db import connection

ROWS = 30_000


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
