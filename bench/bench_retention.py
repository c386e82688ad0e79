#!/usr/bin/env python
"""Retention and scheduling figures, each printed as a ratio against a baseline measured in the same run.

    eval "$(scripts/services env)" && .venv/bin/python bench/bench_retention.py            # 100k-record catalog
    eval "$(scripts/services env)" && .venv/bin/python bench/bench_retention.py --quick    # 10k, smoke

A database `bench_issue4` is created, migrated and seeded (`seed_data --scale 10`), and dropped at the
end unless --keep. Figures (issue 4 names no targets; these show where the time goes):
  plan     : retention_plan over N in-memory records vs sorting them by time (the least any planner does)
  dry run  : apply_retention --dry-run over a catalog of N rows vs only loading those rows from PostgreSQL
  celery   : a backup through a real celery worker (send -> record succeeded) vs backup_create in-process
Wall times are the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "bench_issue4"
BENCH_REDIS_DB = "5"


def best_of(repeat: int, action) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def psql(sql: str) -> None:
    env = os.environ | {"PGPASSWORD": os.environ.get("DB_PASSWORD", "")}
    subprocess.run(
        ["psql", "-X", "-q", "-h", os.environ["DB_HOST"], "-p", os.environ.get("DB_PORT", "5432"), "-U",
         os.environ.get("DB_USER", "postgres"), "-d", "postgres", "-c", sql],
        env=env, check=True, capture_output=True,
    )  # fmt: skip


def records(count: int, now: dt.datetime):
    from dbops.models import BackupRecord

    rng = random.Random(42)
    statuses = ["succeeded"] * 8 + ["failed", "running"]
    return [
        BackupRecord(
            pk=pk,
            started_at=now - dt.timedelta(minutes=rng.randrange(0, 3 * 365 * 24 * 60)),
            status=rng.choice(statuses),
            kind="full",
            database_alias="default",
            engine="postgresql",
            database_name=BENCH_DB,
            format="custom",
        )
        for pk in range(1, count + 1)
    ]


def figure_plan(count: int, repeat: int) -> None:
    from django.utils import timezone

    from dbops.models import RetentionPolicy
    from dbops.services.backups.retention import retention_plan

    now = timezone.now()
    history = records(count, now)
    policy = RetentionPolicy(name="bench", keep_daily=7, keep_weekly=4, keep_monthly=12, keep_last=3)
    baseline = best_of(repeat, lambda: sorted(history, key=lambda b: (b.started_at, b.pk), reverse=True))
    planned = best_of(repeat, lambda: retention_plan(backups=history, policy=policy, now=now))
    print(f"plan     : retention_plan of {count:,} records {planned * 1000:.1f} ms, sort {baseline * 1000:.1f} ms "
          f"-> ratio {planned / baseline:.1f}x")  # fmt: skip


def figure_dry_run(count: int, repeat: int) -> None:
    from django.core.management import call_command
    from django.utils import timezone

    from dbops.models import BackupRecord, RetentionPolicy

    BackupRecord.objects.all().delete()
    rows = records(count, timezone.now())
    for row in rows:
        row.pk = None
    BackupRecord.objects.bulk_create(rows, batch_size=5000)
    RetentionPolicy.objects.update_or_create(name="bench", defaults={"keep_daily": 7, "keep_weekly": 4})
    baseline = best_of(repeat, lambda: list(BackupRecord.objects.exclude(status="deleted")))
    dry_run = best_of(repeat, lambda: call_command("apply_retention", "--policy", "bench", "--dry-run",
                                                   "--json", stdout=StringIO()))  # fmt: skip
    print(f"dry run  : apply_retention --dry-run --json over {count:,} rows {dry_run:.2f} s, loading them "
          f"{baseline:.2f} s -> ratio {dry_run / baseline:.1f}x")  # fmt: skip
    BackupRecord.objects.all().delete()


def figure_celery(repeat: int, backup_dir: Path) -> None:
    from celery import Celery

    from dbops.models import BackupRecord
    from dbops.services.backups.create import backup_create

    redis_url = f"redis://{os.environ['REDIS_HOST']}:{os.environ['REDIS_PORT']}/{BENCH_REDIS_DB}"
    log = backup_dir / "worker.log"
    with log.open("wb") as handle:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "multipult", "worker", "--pool=prefork", "--concurrency=1",
             "--loglevel=INFO", "--hostname=bench-issue4@%h"],
            cwd=ROOT, env=os.environ | {"REDIS_DB": BENCH_REDIS_DB, "LOG_FORMAT": "text"}, stdout=handle,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    app = Celery("bench-issue4", broker=redis_url, backend=redis_url, set_as_current=False)
    try:
        deadline = time.monotonic() + 120
        while b"ready." not in log.read_bytes():
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        app.send_task("dbops.tasks.run_backup", kwargs={"upload_s3": False}).get(timeout=300)  # warm the worker

        def through_worker():
            result = app.send_task("dbops.tasks.run_backup", kwargs={"upload_s3": False}).get(timeout=300)
            assert BackupRecord.objects.get(pk=result["backup_id"]).status == "succeeded"

        in_process = best_of(repeat, lambda: backup_create(compression="zstd"))
        worker_path = best_of(repeat, through_worker)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        app.close()
    print(f"celery   : backup through the worker {worker_path:.2f} s, in-process {in_process:.2f} s "
          f"-> ratio {worker_path / in_process:.2f}x")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k records instead of 100k (a smoke run).")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per measurement; the best is reported.")
    parser.add_argument("--keep", action="store_true", help="Keep the bench_issue4 database afterwards.")
    args = parser.parse_args()
    if not os.environ.get("DB_HOST") or not os.environ.get("REDIS_HOST"):
        print('Needs the real servers: eval "$(scripts/services env)" first.', file=sys.stderr)
        return 2
    count = 10_000 if args.quick else 100_000
    backup_dir = Path(f"/tmp/bench-issue4-{os.getpid()}")
    backup_dir.mkdir()
    os.environ.update({"DB_NAME": BENCH_DB, "BACKUP_DIR": str(backup_dir), "S3_BACKUP_BUCKET": ""})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multipult.settings")
    sys.path.insert(0, str(ROOT))
    psql(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{BENCH_DB}"')
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        call_command("seed_data", "--scale", "10", "--quiet", stdout=StringIO())
        figure_plan(count, args.repeat)
        figure_dry_run(count, args.repeat)
        figure_celery(args.repeat, backup_dir)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            psql(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        subprocess.run(["rm", "-rf", str(backup_dir)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
