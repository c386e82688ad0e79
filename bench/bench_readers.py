#!/usr/bin/env python
"""Benchmark: the import_data file readers (json, jsonl, csv, sql), in-process, no database.

    .venv/bin/python bench/bench_readers.py [--records 200000] [--quick]

For each format a file of N concept records is written by export_data's own writer, then read back
by import_data's reader. Printed per format, each as a ratio measured in the same run:
  - speed vs `json.load` of the json file (the standard library reading the same records whole);
  - linearity: seconds per record at 4N / seconds per record at N (1.0 = linear; a reader that
    rescans or copies the rest of the file per record shows ~4 here; read_sql once did);
  - peak traced memory at 4N / at N (1.0 = bounded by design; ~4 = holds the file).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multipult.settings")

import django  # noqa: E402

django.setup()

from dbops.services.datamigration.entities import ENTITIES  # noqa: E402
from dbops.services.datamigration.formats import FORMATS, READERS, open_writer  # noqa: E402


def write_file(fmt: str, folder: Path, count: int) -> Path:
    target = folder / (f"concepts-{count}.{fmt}" if fmt != "csv" else f"concepts-{count}.zip")
    writer = open_writer(fmt, target, header={"contents": ["concepts"], "anonymized": False})
    writer.begin_entity(ENTITIES["concepts"])
    for number in range(count):
        writer.write(
            {
                "id": number + 1,
                "code": f"C{number:08d}",
                "name": f"concept number {number}",
                "description": "a description of a concept, with 'quotes' and a\nsecond line",
                "created_by": None,
                "created_at": "2026-01-01T00:00:00+00:00",
                "updated_at": "2026-01-01T00:00:00+00:00",
            }
        )
    writer.end_entity()
    writer.finish()
    return target


def measure(read) -> tuple[float, int]:
    """(seconds, peak traced bytes); timed without tracemalloc, whose per-allocation cost would skew it."""
    gc.collect()
    started = time.perf_counter()
    read()
    seconds = time.perf_counter() - started
    gc.collect()
    tracemalloc.start()
    read()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000, help="N (the larger run reads 4N).")
    parser.add_argument("--quick", action="store_true", help="Small smoke run: N = 20,000.")
    args = parser.parse_args()
    if args.quick:
        args.records = 20_000
    with tempfile.TemporaryDirectory(prefix="bench-readers-") as folder:
        results = {}
        for count in (args.records, 4 * args.records):
            json_file = write_file("json", Path(folder), count)

            def load_whole(path=json_file):
                with open(path, encoding="utf-8") as handle:
                    return sum(len(records) for records in json.load(handle)["entities"].values())

            results[("stdlib", count)] = measure(load_whole)
            for fmt in FORMATS:
                path = json_file if fmt == "json" else write_file(fmt, Path(folder), count)
                results[(fmt, count)] = measure(lambda path=path, fmt=fmt: sum(1 for _ in READERS[fmt](path)))
                if fmt != "json":
                    path.unlink()
            json_file.unlink()
        small, large = args.records, 4 * args.records
        print(f"readers, {small:,} and {large:,} concept records:")
        for fmt in FORMATS:
            seconds, _ = results[(fmt, large)]
            speed = results[("stdlib", large)][0] / seconds
            linearity = (seconds / large) / (results[(fmt, small)][0] / small)
            memory = results[(fmt, large)][1] / results[(fmt, small)][1]
            print(
                f"  {fmt:<5}  {large / seconds:>9,.0f} records/s = {speed:.2f}x json.load;  "
                f"linearity {linearity:.2f} (1 = linear);  peak memory 4N/N {memory:.2f} (1 = bounded)"
            )
        stdlib_memory = results[("stdlib", large)][1] / results[("stdlib", small)][1]
        print(f"  (json.load itself: peak memory 4N/N {stdlib_memory:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
