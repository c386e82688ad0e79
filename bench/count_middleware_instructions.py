#!/usr/bin/env python
"""Where the query profiler's cost goes, in counted instructions (not disturbed by the machine's load).

Runs bench_middleware's 50-statement request in phases under callgrind, each phase ended by an
os.getppid() call (callgrind --dump-before=getppid), and prints instructions per request:
P0 unprofiled, P1 profiled, then profiled with parts switched off one by one (P2 no log formatting,
P3 no log records, P4 no sqlcommenter comment, P5 a pass-through execute wrapper), then P0 and P1
again as a stability check. Uses the configured database (seeded when it has < 50 users).

    eval "$(scripts/services env)" && .venv/bin/python bench/count_middleware_instructions.py [--requests 10]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ["P0 off", "P1 on", "P2 no-format", "P3 no-records", "P4 no-comment", "P5 passthru", "P0' off", "P1' on"]
WARM_UP = 40  # requests before the phases, every other one profiled


def run_phases(requests: int) -> None:
    import logging

    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multipult.settings")
    import django

    django.setup()
    import bench_middleware
    from django.conf import settings
    from django.test import Client, override_settings

    from dbops.instrumentation import profiling
    from multipult.core.models import User
    from multipult.core.services.seeding import seed_create

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    if User.objects.count() < bench_middleware.STATEMENTS:
        seed_create(scale=3, seed=1)
    ids = list(User.objects.order_by("id").values_list("id", flat=True)[: bench_middleware.STATEMENTS])
    urlconf = bench_middleware.fifty_statements_urlconf(ids)
    console = bench_middleware.console_logs_to_devnull()
    profiling_logger = logging.getLogger("dbops.profiling")
    client = Client()

    def phase(profiled: bool) -> None:
        settings.QUERY_PROFILING_ENABLED = profiled
        for _ in range(requests):
            client.get("/fifty")
        profiling.profile_logs_drain()  # the log writer's thread finishes the phase's records within it
        os.getppid()  # the phase's end: callgrind dumps its counts here

    with override_settings(ROOT_URLCONF=urlconf, SLOW_QUERY_THRESHOLD_MS=10_000):
        for index in range(WARM_UP):  # warm-up: caches of both variants filled
            settings.QUERY_PROFILING_ENABLED = index % 2 == 0
            client.get("/fifty")
        os.getppid()
        phase(False)
        phase(True)
        for handler in console:
            handler.setLevel(logging.CRITICAL)
        phase(True)
        profiling_logger.disabled = True
        phase(True)
        sqlcomment, call = profiling.sqlcomment, profiling.QueryProfile.__call__
        profiling.sqlcomment = lambda tags: ""
        phase(True)
        profiling.QueryProfile.__call__ = lambda self, execute, sql, params, many, context: execute(
            sql, params, many, context
        )
        phase(True)
        profiling.sqlcomment, profiling.QueryProfile.__call__ = sqlcomment, call
        profiling_logger.disabled = False
        for handler in console:
            handler.setLevel(logging.NOTSET)
        phase(False)
        phase(True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10, help="Requests per phase.")
    parser.add_argument("--phases", action="store_true", help=argparse.SUPPRESS)  # the run under valgrind
    args = parser.parse_args()
    if args.phases:
        run_phases(args.requests)
        return 0
    with tempfile.TemporaryDirectory() as out:
        command = ["valgrind", "--tool=callgrind", "--dump-before=getppid", "--dump-instr=no",
                   "--separate-threads=yes", f"--callgrind-out-file={out}/cg.%p", sys.executable, __file__,
                   "--phases", f"--requests={args.requests}"]  # fmt: skip
        subprocess.run(command, check=True, env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True)
        request_thread: dict[int, int] = {}
        other_threads = 0
        for name in glob.glob(f"{out}/cg.*"):
            text = Path(name).read_text()
            total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
            if total is None:  # the run's own header file
                continue
            part = re.search(r"^part: (\d+)", text, re.M)
            thread = re.search(r"^thread: (\d+)", text, re.M)
            if thread is not None and thread.group(1) != "1":
                other_threads += int(total.group(1))  # dumped once, at the end (getppid dumps its own thread)
            else:
                number = int(part.group(1)) if part else 0
                request_thread[number] = request_thread.get(number, 0) + int(total.group(1))
    # Phases are parts 2..9 (part 1 ends the warm-up); the request thread is the one that serves the requests.
    per_request = [request_thread[number] / args.requests for number in sorted(request_thread)[1 : 1 + len(PHASES)]]
    for name, instructions in zip(PHASES, per_request, strict=True):
        added = (instructions - per_request[0]) / 1e3
        print(f"{name:14s} {instructions / 1e3:10.1f} k instructions/request on the request thread ({added:+8.1f} k)")
    profiled_phases = sum(1 for name in PHASES if not name.endswith("off"))
    profiled_requests = WARM_UP // 2 + profiled_phases * args.requests
    print(f"other threads (the profile log writer): {other_threads / 1e3:.1f} k in all, "
          f"~{other_threads / profiled_requests / 1e3:.1f} k per profiled request")  # fmt: skip
    first, again = per_request[1] / per_request[0], per_request[7] / per_request[6]
    print(f"RATIO instructions profiled/unprofiled on the request thread = {first:.4f}, again {again:.4f}")
    every = (per_request[1] + other_threads / profiled_requests) / per_request[0]
    print(f"RATIO instructions profiled/unprofiled, every thread (writer averaged) = {every:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
