#!/usr/bin/env python
"""Index advice on a fixed workload over the seeded database: is every advised index used, are the
indexes an expert would add found, what each one is worth in real time, and what analysis costs.

  precision = advised indexes that their statement's plan uses once built / advised indexes (target 1.0)
  recall    = expert indexes (named below) that the advice contains / expert indexes (target >= 0.8)
  speed-up  = EXPLAIN ANALYZE time of the statement before / after its index, built in a scratch copy of
              a fresh backup (analyze_query --verify's service)
  analysis  = time of query_analyze over the workload / time of running its statements once (target <= 2)

Ten statements: five that an index helps, five that none does (most rows match, a full aggregate, an
index already there). Runs in a throw-away database (seeded with seed_data's service, --scale 200, or 60
with --quick) and a temporary backup folder, both removed at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import bench_database, setup_django, timed  # noqa: E402

os.environ["BACKUP_DIR"] = tempfile.mkdtemp(prefix="bench-advice-")
setup_django("advice")

from django.db import connection  # noqa: E402

from dbops.instrumentation.analyzer import query_analyze  # noqa: E402
from dbops.instrumentation.index_verify import index_advice_verify  # noqa: E402
from dbops.services.backups.create import backup_create  # noqa: E402
from multipult.core.services.seeding import seed_create  # noqa: E402

MIN_ROWS = 2_000  # analyze_query --min-rows: the smallest seeded table the workload reads has 3,000 rows at --quick
# (statement, the expert's index as (table, leading keys the advice may start with) or None: none helps)
WORKLOAD: list[tuple[str, tuple[str, tuple[str, ...]] | None]] = [
    ("SELECT id FROM core_storedfile WHERE sha256 = '{sha}'", ("core_storedfile", ("sha256",))),
    ("SELECT id, action FROM core_auditlog ORDER BY timestamp DESC LIMIT 20", ("core_auditlog", ("timestamp DESC",))),
    (
        "SELECT id FROM core_auditlog WHERE changes ->> 'reason' = 'Nothing here at all.'",
        ("core_auditlog", ("(changes ->> 'reason')",)),
    ),
    (
        "SELECT id, timestamp FROM core_auditlog WHERE action = 'restore' AND timestamp >= '2025-12-25'",
        ("core_auditlog", ("timestamp", "action")),
    ),
    (
        "SELECT id, dictionary_id FROM core_dictionaryentry WHERE key = 'no-such-key'",
        ("core_dictionaryentry", ("key",)),
    ),
    ("SELECT count(*) FROM core_auditlog WHERE action = 'update'", None),
    ("SELECT action, count(*) FROM core_auditlog GROUP BY action", None),
    ("SELECT id FROM core_storedfile WHERE size > 0", None),
    ("SELECT count(*) FROM core_concept", None),
    ("SELECT id FROM core_auditlog WHERE entity_type = 'core.concept' AND entity_id = 5", None),
]


def run_once(statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
            cursor.fetchall()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="--scale 60 instead of 200.")
    parser.add_argument("--scale", type=float, help="seed_data scale (about 1,000 rows a unit).")
    parser.add_argument("--repeat", type=int, default=5, help="Timed repetitions of the timing figure (median).")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print('bench_index_advice needs PostgreSQL: eval "$(scripts/services env)" first.', file=sys.stderr)
        return 2
    scale = args.scale or (60 if args.quick else 200)
    with bench_database():
        seed_create(scale=scale, seed=7)
        with connection.cursor() as cursor:
            cursor.execute("SELECT sha256 FROM core_storedfile ORDER BY id LIMIT 1 OFFSET 17")
            sha = cursor.fetchone()[0]
            cursor.execute("VACUUM ANALYZE")
        statements = [sql.format(sha=sha) for sql, _expert in WORKLOAD]
        run_once(statements)  # warm the cache for both sides of the timing figure
        running = timed(lambda: run_once(statements), args.repeat)
        analysing = timed(
            lambda: [query_analyze(sql=sql, large_table_rows=MIN_ROWS) for sql in statements], args.repeat
        )
        analyses = [query_analyze(sql=sql, large_table_rows=MIN_ROWS) for sql in statements]
        advised = [(number, s) for number, analysis in enumerate(analyses) for s in analysis.suggestions]
        backup_create(tag="bench_index_advice")
        verification = index_advice_verify(statements=statements, suggestions=[s for _, s in advised])
    helped = sum(1 for _, expert in WORKLOAD if expert)
    print(f"workload: {len(statements)} statements, {helped} helped by an index (scale {scale:g})")
    for number, analysis in enumerate(analyses):
        names = ", ".join(s.name for s in analysis.suggestions) or "-"
        print(f"  #{number + 1} advised: {names:40} {' '.join(statements[number].split())[:70]}")
    used = [s for number, s in advised if s.name in verification.statements[number].indexes_used]
    precision = len(used) / len(advised) if advised else 1.0
    experts = [(number, expert) for number, (_sql, expert) in enumerate(WORKLOAD) if expert]
    found = [
        number
        for number, (table, leading) in experts
        if any(s.table == table and s.columns and s.columns[0] in leading for s in analyses[number].suggestions)
    ]
    wrongly = [
        number + 1 for number, (_sql, expert) in enumerate(WORKLOAD) if expert is None and analyses[number].suggestions
    ]
    print(f"precision of advice     = {precision:.2f} ({len(used)} of {len(advised)} advised indexes used once built)")
    print(f"recall of expert indexes = {len(found) / len(experts):.2f} ({len(found)} of {len(experts)})")
    print(f"advised where no index helps: {wrongly or 'none'}")
    for number, suggestion in advised:
        measured = verification.statements[number]
        speedup = f"{measured.speedup:,.1f}x" if measured.speedup else "-"
        print(
            f"speed-up with {suggestion.name:32} = {speedup:>8} "
            f"({measured.before_ms:.3f} ms -> {measured.after_ms:.3f} ms, EXPLAIN ANALYZE in a scratch copy)"
        )
    print(f"analysis / running once = {analysing / running:.2f} ({analysing * 1000:.1f} ms vs {running * 1000:.1f} ms)")
    return 0 if precision == 1.0 and len(found) / len(experts) >= 0.8 and not wrongly else 1


if __name__ == "__main__":
    sys.exit(main())
