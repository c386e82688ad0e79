#!/usr/bin/env python
"""Runs every benchmark under bench/ (bench_*.py) one after the other and prints their figures.

Each benchmark measures its baseline in the same run and prints its figure as a ratio, so the
numbers compare across machines. Extra arguments are passed to every benchmark (e.g. `--quick`
for small sizes where a benchmark supports it); `--only NAME` runs one.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", default=[], help="Run only bench_<NAME>.py (repeatable).")
    parser.add_argument("--list", action="store_true", help="List the benchmarks and exit.")
    args, passthrough = parser.parse_known_args()

    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if args.only:
        wanted = {f"bench_{name.removeprefix('bench_').removesuffix('.py')}.py" for name in args.only}
        unknown = wanted - {script.name for script in scripts}
        if unknown:
            print(f"Unknown benchmark(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        scripts = [script for script in scripts if script.name in wanted]
    if args.list:
        for script in scripts:
            print(script.name)
        return 0

    failures = []
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(script), *passthrough], cwd=BENCH_DIR.parent)
        print(f"--- {script.name}: exit {result.returncode} in {time.perf_counter() - started:.0f}s", flush=True)
        if result.returncode != 0:
            failures.append(script.name)
    if failures:
        print(f"\nFailed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
