#!/usr/bin/env python
"""The GraphQL figures of issue 15, each a ratio against a baseline measured in the same run:

1. statements per nested query at 10 and at N users (DataLoaders; must be equal), and naive / DataLoaders;
2. the depth-6 query of the issue (236 MB, 44 s before the cost limit): time to refuse it, against one
   `{ __typename }` query, and the process RSS before and after;
3. the nested query at --json-users users against building the same JSON from the same rows with
   `values()` and `json.dumps` in this process (the floor: no GraphQL at all).

    eval "$(scripts/services env)" && .venv/bin/python bench/bench_graphql.py [--users 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
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
DEPTH_SIX = "{ users(limit: 1000) { roles { users { roles { users { roles { name } } } } } } }"


def count_statements(execute_query, *, users: int, batch: bool, viewer) -> tuple[int, dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        result = execute_query(QUERY, variables={"limit": users}, batch=batch, user=viewer)
    assert result.errors is None, result.errors
    assert len(result.data["users"]) == users
    return len(queries), result.data


def timed(run) -> float:
    # Each run starts with no garbage pending, so one variant's garbage is not collected in another's time.
    gc.collect()
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def values_json(users: int) -> bytes:
    """The nested query's JSON from plain rows: the floor any GraphQL layer stands on."""
    from multipult.core.models import Role, StoredFile, User

    rows = list(User.objects.order_by("-date_joined", "-id").values("id", "username", "email", "is_active")[:users])
    ids = [row["id"] for row in rows]
    roles: dict[int, list] = {user_id: [] for user_id in ids}
    links = Role.users.through.objects.filter(user_id__in=ids).values(
        "user_id", "role__id", "role__name", "role__description"
    )
    for link in links.order_by("role__name", "role_id"):
        roles[link["user_id"]].append(
            {"id": str(link["role__id"]), "name": link["role__name"], "description": link["role__description"]}
        )
    files: dict[int, list] = {user_id: [] for user_id in ids}
    for row in (
        StoredFile.objects.filter(uploaded_by_id__in=ids)
        .order_by("-created_at", "-id")
        .values("uploaded_by_id", "id", "name", "size", "content_type")
    ):
        files[row["uploaded_by_id"]].append(
            {"id": str(row["id"]), "name": row["name"], "size": row["size"], "contentType": row["content_type"]}
        )
    data = [
        {"id": str(row["id"]), "username": row["username"], "email": row["email"], "isActive": row["is_active"],
         "roles": roles[row["id"]][:20], "files": files[row["id"]][:20]}
        for row in rows
    ]  # fmt: skip
    return json.dumps({"data": {"users": data}}).encode()


def top_up(users: int, *, roles_per_user: int, files_per_user: int) -> None:
    """Gives the first `users` users of the query `roles_per_user` roles and `files_per_user` files, so the
    nested query's response has the issue's size (500 users: about 14,000 objects, 1.4 MB)."""
    from django.db.models import Count

    from multipult.core.models import Role, StoredFile, User

    missing_roles = roles_per_user - Role.objects.count()
    Role.objects.bulk_create(
        Role(name=f"bench-role-{index}", description=f"Role {index} added for the response size")
        for index in range(max(missing_roles, 0))
    )
    role_ids = list(Role.objects.order_by("id").values_list("id", flat=True)[:roles_per_user])
    ids = list(User.objects.order_by("-date_joined", "-id").values_list("id", flat=True)[:users])
    links = Role.users.through
    have = set(links.objects.filter(user_id__in=ids).values_list("user_id", "role_id"))
    links.objects.bulk_create(
        links(user_id=user_id, role_id=role_id)
        for user_id in ids
        for role_id in role_ids
        if (user_id, role_id) not in have
    )
    counts = dict(
        StoredFile.objects.filter(uploaded_by_id__in=ids).values("uploaded_by_id").annotate(n=Count("id"))
        .values_list("uploaded_by_id", "n")
    )  # fmt: skip
    StoredFile.objects.bulk_create(
        StoredFile(
            name=f"report-{user_id}-{index}.pdf",
            storage_path=f"bench/{user_id}/{index}",
            content_type="application/pdf",
            size=1000 + index,
            entity_type="user",
            entity_id=user_id,
            uploaded_by_id=user_id,
        )  # fmt: skip
        for user_id in ids
        for index in range(files_per_user - counts.get(user_id, 0))
    )


def objects_in(data: dict) -> int:
    return sum(1 + len(user["roles"]) + len(user["files"]) for user in data["users"])


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="Users seeded (20 per scale unit) and listed.")
    parser.add_argument("--json-users", type=int, default=500, help="Users of the GraphQL vs values() figure.")
    parser.add_argument(
        "--roles-per-user", type=int, default=20, help="Roles of each --json-users user (the list's default limit)."
    )
    parser.add_argument("--files-per-user", type=int, default=8, help="Files of each --json-users user.")
    parser.add_argument("--runs", type=int, default=5, help="Timed runs of each variant (interleaved).")
    parser.add_argument("--quick", action="store_true", help="Small sizes for a smoke run (100 users, 2 runs).")
    args = parser.parse_args()
    if args.quick:
        args.users, args.json_users, args.runs = 100, 100, 2

    setup_django("bench_graphql")
    from django.conf import settings

    from multipult.core.models import User
    from multipult.core.services.seeding import seed_create
    from multipult.graphql.schema import execute_query

    settings.GRAPHQL_MAX_COST = 10_000_000  # the nested query at 1,000 users costs more than the default allows
    viewer = User(username="bench-staff", is_staff=True, is_superuser=True, is_active=True)  # sees every field
    with bench_database():
        seed_create(scale=args.users / 20, seed=42)
        top_up(args.json_users, roles_per_user=args.roles_per_user, files_per_user=args.files_per_user)
        small_statements, _ = count_statements(execute_query, users=10, batch=True, viewer=viewer)
        loader_statements, loader_data = count_statements(execute_query, users=args.users, batch=True, viewer=viewer)
        naive_statements, naive_data = count_statements(execute_query, users=args.users, batch=False, viewer=viewer)
        assert loader_data == naive_data, "DataLoader and naive results differ"

        settings.GRAPHQL_MAX_COST = 100_000  # the default, for the refusal
        rss_before = rss_mb()
        refuse_times, trivial_times = [], []
        for _ in range(args.runs * 4):
            refuse_times.append(timed(lambda: execute_query(DEPTH_SIX, user=viewer)))
            trivial_times.append(timed(lambda: execute_query("{ __typename }", user=viewer)))
        refused = execute_query(DEPTH_SIX, user=viewer)
        assert refused.data is None and "GRAPHQL_MAX_COST" in refused.errors[0].message, refused.errors
        rss_after = rss_mb()
        settings.GRAPHQL_MAX_COST = 10_000_000

        variables = {"limit": args.json_users}
        nested = execute_query(QUERY, variables=variables, user=viewer)
        graphql_bytes, graphql_objects = len(json.dumps(nested.formatted)), objects_in(nested.data)
        floor_bytes = len(values_json(args.json_users))
        loader_times, naive_times, graphql_times, floor_times = [], [], [], []
        for _ in range(args.runs):  # interleaved, so load on the shared machine hits all alike
            loader_times.append(timed(lambda: execute_query(QUERY, variables={"limit": args.users}, user=viewer)))
            naive_times.append(
                timed(lambda: execute_query(QUERY, variables={"limit": args.users}, batch=False, user=viewer))
            )
            graphql_times.append(
                timed(lambda: json.dumps(execute_query(QUERY, variables=variables, user=viewer).formatted))
            )
            floor_times.append(timed(lambda: values_json(args.json_users)))

    loader_ms, naive_ms = median(loader_times) * 1000, median(naive_times) * 1000
    refuse_ms, trivial_ms = median(refuse_times) * 1000, median(trivial_times) * 1000
    graphql_ms, floor_ms = median(graphql_times) * 1000, median(floor_times) * 1000
    lines = [
        f"nested users->roles/files query, {args.users} users, median of {args.runs} runs each",
        f"  SQL statements: DataLoaders {small_statements} at 10 users, {loader_statements} at {args.users}; "
        f"naive {naive_statements}",
        f"  latency:        DataLoaders {loader_ms:.1f} ms, naive {naive_ms:.1f} ms",
        f"RATIO statements at {args.users} / at 10 users = {loader_statements / small_statements:.2f}x (must be 1)",
        f"RATIO statements naive/DataLoaders = {naive_statements / loader_statements:.1f}x",
        f"RATIO latency    naive/DataLoaders = {naive_ms / loader_ms:.2f}x",
        f"depth-6 query of the issue refused in {refuse_ms:.2f} ms (p50 of {len(refuse_times)}); "
        f"{{ __typename }} {trivial_ms:.2f} ms",
        f"RATIO refusal / trivial query = {refuse_ms / trivial_ms:.2f}x; "
        f"RSS {rss_before:.1f} MB before, {rss_after:.1f} MB after",
        f"nested query at {args.json_users} users ({graphql_objects:,} objects): GraphQL {graphql_ms:.1f} ms "
        f"({graphql_bytes:,} bytes), "
        f"values()+json.dumps {floor_ms:.1f} ms ({floor_bytes:,} bytes)",
        f"RATIO GraphQL / values()+json.dumps = {graphql_ms / floor_ms:.2f}x (target <= 3)",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
