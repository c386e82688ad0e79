#!/usr/bin/env python
"""Straight-to-S3 backup figures (issue 18), each printed as a ratio against a baseline measured in the same run.

    eval "$(scripts/services env)" && .venv/bin/python bench/bench_s3_stream.py            # 1M and 4M rows
    eval "$(scripts/services env)" && .venv/bin/python bench/bench_s3_stream.py --quick    # ~20k rows, smoke

For each scale the seeded database `bench_issue3_s<scale>` of bench_backup.py is made (or reused with --reuse).
  time   : `backup_advanced --compress zstd --upload-s3 --no-local-copy` vs the same backup to local disk
           (`backup_advanced --compress zstd`), against the loopback S3 server of `scripts/services` (target <= 1.2)
  memory : peak RSS of the straight-to-S3 process (and its children) at every scale (target <= 150 MB), and
           its growth from the smallest to the largest scale (flat by design: target ratio ~1.0)
  no local artifact: the backup folder holds no file after a straight-to-S3 run (checked every round).
Whole-process wall time, median of --rounds paired ratios (the order alternates every round).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import boto3
from bench_backup import PYTHON, paired_rounds, prepare, print_medians, project_env, psql, ratio, timed

S3_VARIABLES = ("S3_BACKUP_BUCKET", "S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")


def s3_bucket():
    client = boto3.resource(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT_URL"],
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )
    return client.Bucket(os.environ["S3_BACKUP_BUCKET"])


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def measure_scale(dbname: str, rounds: int, workdir: Path) -> dict:
    local_dir, s3_dir = workdir / f"local-{dbname}", workdir / f"s3-{dbname}"
    for folder in (local_dir, s3_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
    local_env = project_env(dbname, local_dir)
    s3_env = {**project_env(dbname, s3_dir), **{name: os.environ[name] for name in S3_VARIABLES if name in os.environ}}
    bucket = s3_bucket()

    def ours() -> list:  # keys are <storage location>/<database>/<name>
        return [item for item in bucket.objects.all() if f"/{dbname}/" in f"/{item.key}"]

    for item in ours():
        item.delete()
    facts: dict = {"s3_rss_kb": 0, "local_rss_kb": 0, "local_files_after_s3": 0}
    backup = [PYTHON, "manage.py", "backup_advanced", "--compress", "zstd", "--quiet"]

    def local_backup() -> float:
        elapsed, _, rss = timed(backup, env=local_env)
        facts["local_rss_kb"] = max(facts["local_rss_kb"], rss)
        for path in files_under(local_dir):  # keep the disk from filling over the rounds
            path.unlink()
        return elapsed

    def straight_to_s3() -> float:
        elapsed, _, rss = timed([*backup, "--upload-s3", "--no-local-copy"], env=s3_env)
        facts["s3_rss_kb"] = max(facts["s3_rss_kb"], rss)
        facts["local_files_after_s3"] += len(files_under(s3_dir))
        stored = ours()
        facts["s3_object_mb"] = max((item.size for item in stored), default=0) / (1024 * 1024)
        for item in stored:  # moto keeps objects in memory
            item.delete()
        return elapsed

    seconds = paired_rounds(rounds, {"local": local_backup, "straight_to_s3": straight_to_s3})
    shutil.rmtree(local_dir, ignore_errors=True)
    shutil.rmtree(s3_dir, ignore_errors=True)
    return {"seconds": seconds, **facts}


def report(scale: float, rows: int, f: dict) -> None:
    s = f["seconds"]
    print(f"\nscale {scale:g}: {rows:,} rows, artifact {f.get('s3_object_mb', 0):.0f} MB, {len(s['local'])} rounds")
    print(f"  straight-to-S3 / local-disk backup          = {ratio(s['straight_to_s3'], s['local'])}  (<= 1.2)")
    print(
        f"  peak RSS straight-to-S3 {f['s3_rss_kb'] / 1024:.0f} MB (<= 150), local {f['local_rss_kb'] / 1024:.0f} MB; "
        f"local files left by straight-to-S3 runs: {f['local_files_after_s3']} (must be 0)"
    )
    print_medians(s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1000,4000", help="seed_data scales (1000 = ~1M rows).")
    parser.add_argument("--quick", action="store_true", help="Small smoke run: scales 5 and 20.")
    parser.add_argument("--rounds", type=int, default=5, help="Paired rounds per figure; the median ratio is kept.")
    parser.add_argument("--reuse", action="store_true", help="Reuse an existing seeded bench database.")
    parser.add_argument("--keep", action="store_true", help="Keep the bench databases afterwards.")
    args = parser.parse_args()
    if "DB_HOST" not in os.environ or "S3_BACKUP_BUCKET" not in os.environ:
        print('Needs the PostgreSQL and S3 servers: eval "$(scripts/services env)" first.', file=sys.stderr)
        return 2
    scales = [5.0, 20.0] if args.quick else [float(s) for s in args.scales.split(",")]
    peaks = []
    with tempfile.TemporaryDirectory(prefix="bench-issue18-") as folder:
        for scale in scales:
            dbname = f"bench_issue3_s{scale:g}".replace(".", "_")
            rows = prepare(dbname, scale, args.reuse)
            figures = measure_scale(dbname, args.rounds, Path(folder))
            report(scale, rows, figures)
            peaks.append((rows, figures["s3_rss_kb"]))
            if not args.keep:
                psql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    if len(peaks) > 1:
        (small_rows, small_rss), (large_rows, large_rss) = peaks[0], peaks[-1]
        print(
            f"\npeak RSS straight-to-S3 at {large_rows:,} rows / at {small_rows:,} rows = {large_rss / small_rss:.2f} "
            f"for {large_rows / max(small_rows, 1):.1f}x the rows (flat: ~1.0)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
