#!/usr/bin/env python
"""What the analyzer's index advice is worth, and what analyzing costs, as ratios measured in one run.

  speedup      = mean time of the filtered query before / after applying the suggested CREATE INDEX
  explain_cost = time of query_analyze (EXPLAIN, no ANALYZE) / time of running the query itself

Runs on PostgreSQL (eval "$(scripts/services env)"; DB_NAME picks the database) in a scratch table
that it drops at the end. `--quick` uses 20,000 rows instead of 200,000.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multipult.settings")

import django  # noqa: E402
from _django import timed  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from dbops.instrumentation.analyzer import query_analyze  # noqa: E402

TABLE = "bench_analyzer_scratch"
QUERY = "SELECT id, name FROM bench_analyzer_scratch WHERE checksum = 'deadbeef'"


def run_query() -> None:
    with connection.cursor() as cursor:
        cursor.execute(QUERY)
        cursor.fetchall()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 rows instead of 200,000.")
    parser.add_argument("--rows", type=int, help="Rows in the scratch table (overrides --quick).")
    parser.add_argument("--repeat", type=int, default=7, help="Timed repetitions per figure (median).")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print('bench_analyzer needs PostgreSQL: eval "$(scripts/services env)" first.', file=sys.stderr)
        return 2
    rows = args.rows or (20_000 if args.quick else 200_000)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
        cursor.execute(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, name text, checksum text, size int)")
        cursor.execute(
            "INSERT INTO bench_analyzer_scratch (name, checksum, size) SELECT 'file ' || i, md5(i::text), i "
            "FROM generate_series(1, %s) i",
            [rows],
        )
        cursor.execute(f"ANALYZE {TABLE}")
    try:
        before = timed(run_query, args.repeat)
        explain = timed(lambda: query_analyze(sql=QUERY), args.repeat)
        [suggestion] = query_analyze(sql=QUERY).suggestions
        with connection.cursor() as cursor:
            cursor.execute(suggestion.create_index_sql)
            cursor.execute(f"ANALYZE {TABLE}")
        after_analysis = query_analyze(sql=QUERY)
        assert not after_analysis.suggestions, "advice should disappear once the index exists"
        after = timed(run_query, args.repeat)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
    print(f"rows: {rows:,}; suggestion: {suggestion.create_index_sql}")
    print(f"speedup (query before / after the suggested index): {before / after:,.1f}x")
    print(f"explain_cost (query_analyze without ANALYZE / running the query): {explain / before:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
