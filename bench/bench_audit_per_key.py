#!/usr/bin/env python
"""`User.recentAuditLogs` at scale (issue 15): the LATERAL per-key limit the loader uses on PostgreSQL
against the portable window query (ROW_NUMBER() over each key's rows), on --rows audit rows.

Both fetch the latest --limit entries of the same --keys actors with the same columns, through the
functions the loader calls (`Connector.rows_per_key`, `dbops.engines.per_key.rows_per_key_window`),
and must return the same rows. Runs alternate, so load on the shared machine hits both alike.

    eval "$(scripts/services env)" && .venv/bin/python bench/bench_audit_per_key.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import time

from _django import bench_database, median, setup_django

ACTORS = 500


def seed_audit_rows(rows: int) -> list[int]:
    """ACTORS users and `rows` audit rows spread over them (and some without an actor), in one statement."""
    from django.db import connection

    from multipult.core.models import AuditLog, User

    User.objects.bulk_create(
        User(username=f"actor-{index}", email=f"actor-{index}@example.com") for index in range(ACTORS)
    )
    actor_ids = list(User.objects.order_by("id").values_list("id", flat=True))
    table = connection.ops.quote_name(AuditLog._meta.db_table)
    with connection.cursor() as cursor:
        # One server-side INSERT ... SELECT: a million ORM objects would measure Python, not the query.
        cursor.execute(
            f"INSERT INTO {table} (actor_id, action, entity_type, entity_id, timestamp, changes, ip_address) "  # noqa: S608
            "SELECT CASE WHEN n %% 97 = 0 THEN NULL ELSE (%s::bigint[])[1 + n %% %s] END, 'update', 'concept', n, "
            "now() - n * interval '1 second', '{}'::jsonb, NULL FROM generate_series(1, %s) AS n",
            [actor_ids, len(actor_ids), rows],
        )
        cursor.execute(f"ANALYZE {table}")
    return actor_ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Audit rows seeded.")
    parser.add_argument("--keys", type=int, default=100, help="Actors whose entries one batch loads.")
    parser.add_argument("--limit", type=int, default=5, help="Entries per actor (the field's default is 5).")
    parser.add_argument("--runs", type=int, default=9, help="Timed runs of each variant (alternating).")
    parser.add_argument("--quick", action="store_true", help="A smoke run (50,000 rows, 3 runs).")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.runs = 50_000, 3

    setup_django("bench_audit_per_key")
    from dbops.engines.base import get_connector
    from dbops.engines.per_key import KEY_ATTRIBUTE, rows_per_key_window
    from multipult.core.models import AuditLog
    from multipult.graphql.dataloaders import RecentAuditLogsByActorIdLoader as Loader

    with bench_database():
        actor_ids = seed_audit_rows(args.rows)
        keys = actor_ids[: args.keys]
        queryset = AuditLog.objects.only("id", "action", "entity_type", "entity_id", "timestamp").order_by(
            *Loader.ordering
        )
        connector = get_connector(queryset.db)

        def lateral() -> list[tuple]:
            rows = connector.rows_per_key(queryset, key_field=Loader.key_field, keys=keys, limit=args.limit)
            return [(getattr(row, KEY_ATTRIBUTE), row.pk) for row in rows]

        def window() -> list[tuple]:
            rows = rows_per_key_window(queryset, key_field=Loader.key_field, keys=keys, limit=args.limit)
            return [(getattr(row, KEY_ATTRIBUTE), row.pk) for row in rows]

        assert sorted(lateral()) == sorted(window()), "LATERAL and window queries return different rows"
        assert len(lateral()) == len(keys) * args.limit
        timings: dict[str, list[float]] = {"lateral": [], "window": []}
        for _ in range(args.runs):
            for name, run in (("lateral", lateral), ("window", window)):
                started = time.perf_counter()
                run()
                timings[name].append(time.perf_counter() - started)

    lateral_ms, window_ms = median(timings["lateral"]) * 1000, median(timings["window"]) * 1000
    print(
        f"recentAuditLogs: latest {args.limit} of {len(keys)} actors among {args.rows:,} audit rows, {args.runs} runs"
    )
    print(f"  p50 LATERAL {lateral_ms:.1f} ms, window {window_ms:.1f} ms")
    print(
        f"RATIO window / LATERAL = {window_ms / lateral_ms:.1f}x (LATERAL {lateral_ms / window_ms:.3f} of the window)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
