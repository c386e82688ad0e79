#!/usr/bin/env python
"""Nested GraphQL query users -> roles / files at 1,000 users: DataLoaders vs the naive resolvers.

Both run the same schema and resolvers in one process on one seeded database; the naive baseline is
`batch=False`, where every loader loads each key as soon as it is asked for (one query per object,
which is what `user.roles.all()` in a resolver does). Prints SQL statements and median latency of
each, and the ratios naive / DataLoaders.

    eval "$(scripts/services env)" && .venv/bin/python bench/bench_graphql.py [--users 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import time

from _django import bench_database, median, setup_django

QUERY = """
query Nested($limit: Int!) {
  users(limit: $limit) {
    id username email isActive
    roles { id name description }
    files { id name size contentType }
  }
}
"""


def count_statements(execute_query, *, users: int, batch: bool) -> tuple[int, dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        result = execute_query(QUERY, variables={"limit": users}, batch=batch)
    assert result.errors is None, result.errors
    assert len(result.data["users"]) == users
    return len(queries), result.data


def time_query(execute_query, *, users: int, batch: bool) -> float:
    started = time.perf_counter()  # timed apart from the counting: capturing SQL costs time too
    result = execute_query(QUERY, variables={"limit": users}, batch=batch)
    elapsed = time.perf_counter() - started
    assert result.errors is None, result.errors
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="Users in the result (seeded 20 per scale unit).")
    parser.add_argument("--runs", type=int, default=5, help="Timed runs of each variant (interleaved).")
    parser.add_argument("--quick", action="store_true", help="Small sizes for a smoke run (100 users, 2 runs).")
    args = parser.parse_args()
    if args.quick:
        args.users, args.runs = 100, 2

    setup_django("bench_graphql")
    from multipult.core.services.seeding import seed_create
    from multipult.graphql.schema import execute_query

    with bench_database():
        seed_create(scale=args.users / 20, seed=42)
        loader_statements, loader_data = count_statements(execute_query, users=args.users, batch=True)
        naive_statements, naive_data = count_statements(execute_query, users=args.users, batch=False)
        assert loader_data == naive_data, "DataLoader and naive results differ"
        loader_times, naive_times = [], []
        for _ in range(args.runs):  # interleaved, so load on the shared machine hits both alike
            loader_times.append(time_query(execute_query, users=args.users, batch=True))
            naive_times.append(time_query(execute_query, users=args.users, batch=False))

    loader_ms, naive_ms = median(loader_times) * 1000, median(naive_times) * 1000
    print(f"nested users->roles/files query, {args.users} users, median of {args.runs} runs each")
    print(f"  SQL statements: DataLoaders {loader_statements}, naive {naive_statements}")
    print(f"  latency:        DataLoaders {loader_ms:.1f} ms, naive {naive_ms:.1f} ms")
    print(f"RATIO statements naive/DataLoaders = {naive_statements / loader_statements:.1f}x")
    print(f"RATIO latency    naive/DataLoaders = {naive_ms / loader_ms:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
