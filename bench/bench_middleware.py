#!/usr/bin/env python
"""QueryProfilingMiddleware overhead: p50 latency of a 50-statement request with every request
profiled vs the same request with profiling off, through the full Django stack (test client).

Requests alternate with/without in blocks of ten, so drift in the shared machine's load hits both alike
and the profile log writer's thread works during profiled requests only, as when every one is profiled.
Prints the p50 of each and the ratio; the target is <= 1.02 (2 % overhead). The process CPU time counts
the profile log writer's thread (dbops.instrumentation.profiling.SummaryLogWriter) too, the request
thread's CPU time does not.

    eval "$(scripts/services env)" && .venv/bin/python bench/bench_middleware.py [--requests 400]
"""

from __future__ import annotations

import argparse
import logging
import os
import time

from _django import bench_database, median, setup_django

STATEMENTS = 50
BLOCK = 10


def fifty_statements_urlconf(ids: list[int]) -> type:
    """A URLconf whose /fifty view runs one statement per id in `ids` (the list may be filled later)."""
    from django.http import JsonResponse
    from django.urls import path

    from multipult.core.models import User

    def fifty_statements(request):
        names = [User.objects.filter(pk=user_id).values_list("username", flat=True).first() for user_id in ids]
        return JsonResponse({"names": names})

    return type("BenchUrls", (), {"urlpatterns": [path("fifty", fifty_statements)]})


def console_logs_to_devnull() -> list[logging.StreamHandler]:
    """The console handlers, now writing into the void: the log records are still formatted, as in
    production, since that is part of the profiler's cost."""
    console = [handler for handler in logging.getLogger().handlers if isinstance(handler, logging.StreamHandler)]
    for handler in console:
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the process)
    return console


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="Timed requests of each variant.")
    parser.add_argument("--quick", action="store_true", help="A smoke run (60 requests each).")
    args = parser.parse_args()
    if args.quick:
        args.requests = 60
    args.requests = -(-args.requests // BLOCK) * BLOCK  # whole blocks

    setup_django("bench_middleware")
    from django.conf import settings
    from django.test import Client, override_settings

    from dbops.instrumentation.profiling import profile_logs_drain
    from multipult.core.models import User
    from multipult.core.services.seeding import seed_create

    ids: list[int] = []
    urlconf = fifty_statements_urlconf(ids)
    console_logs_to_devnull()

    with bench_database(), override_settings(ROOT_URLCONF=urlconf, SLOW_QUERY_THRESHOLD_MS=10_000):
        seed_create(scale=3, seed=1)
        ids.extend(User.objects.order_by("id").values_list("id", flat=True)[:STATEMENTS])
        client = Client()
        wall: dict[bool, list[float]] = {True: [], False: []}
        cpu: dict[bool, list[float]] = {True: [], False: []}
        thread_cpu: dict[bool, list[float]] = {True: [], False: []}  # the request thread's own
        for index in range(args.requests * 2 + 40):
            # Blocks of BLOCK requests, profiled and not in turn: the log writer's thread works on during the
            # requests after a profiled one, so they are profiled ones too (as when every request is), and
            # its queue is emptied, untimed, before a block of unprofiled requests starts.
            profiled = (index // BLOCK) % 2 == 0
            if index % BLOCK == 0:
                profile_logs_drain()
            settings.QUERY_PROFILING_ENABLED = profiled
            started, started_cpu, started_thread = time.perf_counter(), time.process_time(), time.thread_time()
            response = client.get("/fifty")
            elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
            elapsed_thread = time.thread_time() - started_thread
            assert response.status_code == 200
            assert ("Server-Timing" in response) is profiled
            if index >= 40:  # the first 20 of each are warm-up
                wall[profiled].append(elapsed)
                cpu[profiled].append(elapsed_cpu)
                thread_cpu[profiled].append(elapsed_thread)
        settings.QUERY_PROFILING_ENABLED = True
        response = client.get("/fifty")
        assert f'desc="{STATEMENTS} queries"' in response["Server-Timing"], response["Server-Timing"]

    with_ms, without_ms = median(wall[True]) * 1000, median(wall[False]) * 1000
    ratio = with_ms / without_ms
    # Each profiled request against the unprofiled one at the same place of the next block: robust to drift.
    paired = median([with_ / without for with_, without in zip(wall[True], wall[False], strict=True)])
    cpu_ratio = median(cpu[True]) / median(cpu[False])
    thread_ratio = median(thread_cpu[True]) / median(thread_cpu[False])
    print(f"{STATEMENTS}-statement request, {args.requests} requests each, alternating")
    print(f"  p50 with profiling {with_ms:.3f} ms, without {without_ms:.3f} ms")
    print(f"RATIO p50 with/without profiling = {ratio:.4f} ({(ratio - 1) * 100:+.2f} % overhead; target <= +2 %)")
    print(f"RATIO median of paired with/without = {paired:.4f} ({(paired - 1) * 100:+.2f} %)")
    print(f"RATIO p50 process CPU time with/without = {cpu_ratio:.4f} ({(cpu_ratio - 1) * 100:+.2f} %)")
    print(f"RATIO p50 request-thread CPU time with/without = {thread_ratio:.4f} ({(thread_ratio - 1) * 100:+.2f} %;"
          " the profile log writer's thread not counted)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
