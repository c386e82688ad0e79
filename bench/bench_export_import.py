#!/usr/bin/env python
"""export_data / import_data against `manage.py dumpdata` / `loaddata` of the same tables (app `core`),
and export_data --anonymize (masking rules and the personal-data scanner) against the plain export.

Every figure is printed as a ratio against its baseline measured in this run. Each measured step runs
as its own `manage.py` process, so wall time includes start-up for both sides, and peak RSS is that
process's own (sampled every 20 ms with psutil).

The baseline (dumpdata/loaddata) is slow (loaddata saves one object at a time), so it runs on a
smaller slice (--baseline-scale, default 50: about 50,000 rows); our tools run on the same slice for
the like-for-like ratio, and at the big sizes (--scales, default 1000,4000: about 1 M and 4 M rows)
for rows/s and memory. The databases are created and dropped by the script: `<DB_NAME>_src` and
`<DB_NAME>_dst` (DB_NAME from the environment, e.g. bench_issue9).

    eval "$(scripts/services env)" && DB_NAME=bench_issue9 .venv/bin/python bench/bench_export_import.py
    ... --quick   # small sizes (scales 20,80, baseline 5) while developing
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "manage.py")]


def admin_connection():
    connection = psycopg2.connect(
        host=os.environ["DB_HOST"],
        port=os.environ.get("DB_PORT", "5432"),
        user=os.environ.get("DB_USER", "postgres"),
        password=os.environ.get("DB_PASSWORD", ""),
        dbname="postgres",
    )
    connection.autocommit = True
    return connection


def recreate(name: str) -> None:
    connection = admin_connection()  # no `with`: psycopg2 would open a transaction, and DROP DATABASE refuses one
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    run_manage(name, "migrate", "--no-input", "-v", "0")


def drop(name: str) -> None:
    """Drops the database and the dbops operations database its run created (`<name>_ops`)."""
    connection = admin_connection()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}_ops"')
    connection.close()


def run_manage(database: str, *args: str) -> tuple[float, int]:
    """Runs one manage.py command against `database`; returns (seconds, peak RSS bytes)."""
    env = {**os.environ, "DB_NAME": database, "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    process = psutil.Popen([*MANAGE, *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{process.stderr.read().decode()[-3000:]}")
    return seconds, peak


def row_count(database: str) -> int:
    connection = psycopg2.connect(
        host=os.environ["DB_HOST"],
        port=os.environ.get("DB_PORT", "5432"),
        user=os.environ.get("DB_USER", "postgres"),
        password=os.environ.get("DB_PASSWORD", ""),
        dbname=database,
    )
    tables = [
        "core_role", "core_user", "core_user_roles", "core_concept", "core_dictionary",
        "core_dictionaryentry", "core_storedfile", "core_auditlog",
    ]  # fmt: skip
    with connection, connection.cursor() as cursor:
        counts = " + ".join(f"(SELECT COUNT(*) FROM {table})" for table in tables)  # noqa: S608 - fixed names
        cursor.execute(f"SELECT {counts}")
        total = cursor.fetchone()[0]
    connection.close()
    return total


def mb(value: int) -> str:
    return f"{value / 2**20:,.0f} MB"


def measure_ours(src: str, dst: str, scale: float, folder: Path, *, imports: bool = True) -> dict:
    recreate(src)
    run_manage(src, "seed_data", "--scale", str(scale), "--quiet")
    rows = row_count(src)
    export_file = folder / f"export-{scale:g}.jsonl"
    export_seconds, export_rss = run_manage(
        src, "export_data", "--format", "jsonl", "--output", str(export_file), "--quiet"
    )
    size = export_file.stat().st_size
    anonymized_file = folder / f"anonymized-{scale:g}.jsonl"
    anonymized_seconds, anonymized_rss = run_manage(
        src, "export_data", "--format", "jsonl", "--anonymize", "--output", str(anonymized_file), "--quiet"
    )
    anonymized_file.unlink()
    import_seconds, import_rss = float("nan"), 0
    if imports:
        recreate(dst)
        import_seconds, import_rss = run_manage(
            dst, "import_data", "--format", "jsonl", "--input", str(export_file), "--allow-privileged", "--quiet"
        )
        imported = row_count(dst)
        if imported != rows:
            sys.exit(f"import of {export_file} gave {imported} rows, expected {rows}")
    export_file.unlink()
    return {
        "rows": rows,
        "export_seconds": export_seconds,
        "export_rss": export_rss,
        "import_seconds": import_seconds,
        "import_rss": import_rss,
        "anonymized_seconds": anonymized_seconds,
        "anonymized_rss": anonymized_rss,
        "size": size,
    }


def measure_baseline(src: str, dst: str, folder: Path) -> dict:
    """dumpdata/loaddata of the `core` app on the database measure_ours just seeded (same rows)."""
    fixture = folder / "baseline.json"
    rows = row_count(src)
    dump_seconds, dump_rss = run_manage(src, "dumpdata", "core", "--format", "json", "-o", str(fixture))
    recreate(dst)
    load_seconds, load_rss = run_manage(dst, "loaddata", str(fixture))
    fixture.unlink()
    return {
        "rows": rows,
        "dump_seconds": dump_seconds,
        "dump_rss": dump_rss,
        "load_seconds": load_seconds,
        "load_rss": load_rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1000,4000", help="seed_data scales for the big runs (default 1000,4000).")
    parser.add_argument("--baseline-scale", type=float, default=50, help="Scale of the dumpdata/loaddata slice.")
    parser.add_argument("--quick", action="store_true", help="Small sizes: scales 20,80 and baseline 5.")
    parser.add_argument("--keep", action="store_true", help="Keep the benchmark databases afterwards.")
    parser.add_argument(
        "--no-big-imports",
        action="store_true",
        help="Skip import_data at the big sizes (exports and the anonymized ratio only; the slice still imports).",
    )
    args = parser.parse_args()
    if "DB_HOST" not in os.environ:
        sys.exit('Needs PostgreSQL: eval "$(scripts/services env)" first.')
    scales = [20.0, 80.0] if args.quick else [float(value) for value in args.scales.split(",")]
    baseline_scale = 5.0 if args.quick else args.baseline_scale
    base = os.environ.get("DB_NAME", "bench_issue9")
    src, dst = f"{base}_src", f"{base}_dst"

    with tempfile.TemporaryDirectory(prefix="bench-export-import-") as temp:
        folder = Path(temp)
        recreate(src)
        startup = min(run_manage(src, "shell", "-c", "pass")[0] for _ in range(3))
        print(f"baseline slice: seed_data --scale {baseline_scale:g}", flush=True)
        ours_small = measure_ours(src, dst, baseline_scale, folder)
        baseline = measure_baseline(src, dst, folder)
        big = {}
        for scale in scales:
            print(f"big run: seed_data --scale {scale:g}", flush=True)
            big[scale] = measure_ours(src, dst, scale, folder, imports=not args.no_big_imports)
        if not args.keep:
            drop(src)
            drop(dst)

    n = baseline["rows"]
    dump_rate, load_rate = n / baseline["dump_seconds"], n / baseline["load_seconds"]
    print()
    print(f"Same {n:,} rows (the baseline slice), wall time per manage.py process:")
    print(
        f"  export_data jsonl vs dumpdata: {baseline['dump_seconds'] / ours_small['export_seconds']:.1f}x faster "
        f"({ours_small['export_seconds']:.1f}s vs {baseline['dump_seconds']:.1f}s)   [target >= 5x]"
    )
    print(
        f"  import_data jsonl vs loaddata: {baseline['load_seconds'] / ours_small['import_seconds']:.1f}x faster "
        f"({ours_small['import_seconds']:.1f}s vs {baseline['load_seconds']:.1f}s)   [target >= 10x]"
    )
    net = {
        key: max(value - startup, 1e-3)
        for key, value in (
            ("dump", baseline["dump_seconds"]),
            ("load", baseline["load_seconds"]),
            ("export", ours_small["export_seconds"]),
            ("import", ours_small["import_seconds"]),
        )
    }
    print(
        f"  net of Django start-up ({startup:.1f}s, `manage.py shell -c pass`): "
        f"export {net['dump'] / net['export']:.1f}x, import {net['load'] / net['import']:.1f}x"
    )
    print(f"  peak RSS: dumpdata {mb(baseline['dump_rss'])}, loaddata {mb(baseline['load_rss'])}")
    first = big[scales[0]]
    for scale in scales:
        run = big[scale]
        rows = run["rows"]
        export_rate, import_rate = rows / run["export_seconds"], rows / run["import_seconds"]
        print(f"At {rows:,} rows (scale {scale:g}, file {mb(run['size'])}):")
        print(
            f"  export {export_rate:,.0f} rows/s = {export_rate / dump_rate:.1f}x dumpdata's rows/s on the slice; "
            f"peak RSS {mb(run['export_rss'])} = {run['export_rss'] / first['export_rss']:.2f}x the "
            f"{first['rows']:,}-row run   [target <= 200 MB, flat]"
        )
        if not args.no_big_imports:
            print(
                f"  import {import_rate:,.0f} rows/s = {import_rate / load_rate:.1f}x loaddata's rows/s on the slice; "
                f"peak RSS {mb(run['import_rss'])} = {run['import_rss'] / first['import_rss']:.2f}x the "
                f"{first['rows']:,}-row run   [aim >= 100,000 rows/s]"
            )
        print(
            f"  anonymized export (masking rules + personal-data scanner) {run['anonymized_seconds']:.1f}s = "
            f"{run['anonymized_seconds'] / run['export_seconds']:.2f}x the plain export; peak RSS "
            f"{mb(run['anonymized_rss'])}   [target <= 1.5x]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
