#!/usr/bin/env python
"""WAL archive throughput: the asynchronous archiver against one `archive_wal` process per segment, on
a burst of real 16 MB segments from a write-heavy load, as ratios measured in one run.

A throwaway cluster (the PITR tests' helper: initdb as the postgres user, free loopback port, default
16 MB segments) whose archive_command is the spool script with nobody acknowledging: it keeps every
segment ready while bulk INSERTs write at least SEGMENTS segments. Then, into fresh local storage:

  baseline   = `manage.py archive_wal %p %f` run once per segment on a sample (what archive_command did)
  archiver   = wal_archiver_run(once=True) over every ready segment (compress, SHA-256, store, fsync,
               acknowledge), WORKERS at a time

and prints the MB/s of segments made durable by each, archiver / baseline, and archiver / 100 MB/s.
Needs root (initdb runs as postgres via runuser) and the PostgreSQL 15 server binaries. `--quick`:
40 segments instead of 200. The cluster and its files are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multipult.settings")

import django  # noqa: E402

django.setup()

from django.test.utils import override_settings  # noqa: E402

from dbops.engines.postgresql.server import pitr_async_archive_command, server_wal_path, server_wal_ready  # noqa: E402
from dbops.services.pitr.wal_archive import cluster_id_from_data_dir  # noqa: E402
from dbops.services.pitr.wal_archiver import wal_archiver_run  # noqa: E402
from tests.dbops.services.pitr.cluster import PG_BIN, ClusterFactory, as_db_owner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_MB_S = 100.0


def segments_burst(cluster, count: int) -> list[str]:
    cluster.query("CREATE TABLE burst (id bigint, payload text)")
    while len([n for n in server_wal_ready(cluster.data_dir) if len(n) == 24]) < count:
        cluster.query(
            "INSERT INTO burst SELECT g, repeat(md5(g::text), 6) || md5(random()::text) "
            "FROM generate_series(1, 400000) g"
        )
    cluster.query("SELECT pg_switch_wal()")
    return [n for n in server_wal_ready(cluster.data_dir) if len(n) == 24]


def storages_at(folder: Path) -> dict:
    return {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        "backups": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": folder}},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="40 segments instead of 200.")
    parser.add_argument("--workers", type=int, default=4, help="Files the archiver has in flight (default 4).")
    parser.add_argument("--level", type=int, default=1, help="The archiver's zstd level (default 1).")
    parser.add_argument("--sample", type=int, default=10, help="Segments archived one process each (default 10).")
    args = parser.parse_args()
    count = 40 if args.quick else 200
    factory = ClusterFactory()
    folders = []
    try:
        spool = factory.root / "spool"
        spool.mkdir(mode=0o755)
        cluster = factory.new("bench")
        as_db_owner(
            str(PG_BIN / "initdb"), "-D", str(cluster.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--locale=C.UTF-8", env=factory.env,
        )  # fmt: skip
        command = pitr_async_archive_command(spool=spool, python=factory.python, wait_seconds=0)
        with (cluster.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {cluster.port}\nunix_socket_directories = '{factory.root}'\n"
                f"wal_level = replica\narchive_mode = on\narchive_command = '{command}'\nfsync = off\n"
                "max_wal_size = 1GB\nshared_buffers = 128MB\n"
            )
        cluster.start()
        names = segments_burst(cluster, count)
        raw = sum(server_wal_path(cluster.data_dir, name).stat().st_size for name in names)
        cluster_id = cluster_id_from_data_dir(cluster.data_dir)

        baseline_dir = Path(tempfile.mkdtemp(prefix="bench-wal-baseline-"))
        folders.append(baseline_dir)
        env = {**os.environ, "BACKUP_DIR": str(baseline_dir), "PITR_STORAGE": "local", "LOG_LEVEL": "WARNING"}
        sample = names[: args.sample]
        started = time.perf_counter()
        for name in sample:
            subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), "archive_wal", str(server_wal_path(cluster.data_dir, name)),
                 name, "--cluster-id", cluster_id],
                check=True, capture_output=True, env=env,
            )  # fmt: skip
        baseline_seconds = time.perf_counter() - started
        sample_bytes = sum(server_wal_path(cluster.data_dir, name).stat().st_size for name in sample)
        baseline_rate = sample_bytes / 2**20 / baseline_seconds

        archive_dir = Path(tempfile.mkdtemp(prefix="bench-wal-archiver-"))
        folders.append(archive_dir)
        with override_settings(STORAGES=storages_at(archive_dir), PITR_STORAGE="local"):
            started = time.perf_counter()
            run = wal_archiver_run(
                data_dir=cluster.data_dir,
                spool=spool,
                cluster_id=cluster_id,
                workers=args.workers,
                level=args.level,
                once=True,
            )
            archiver_seconds = time.perf_counter() - started
        if run.failures:
            raise SystemExit(f"archiver failures: {run.failures}")
        archiver_rate = run.raw_bytes / 2**20 / archiver_seconds
    finally:
        factory.close()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    print(
        f"{len(names)} WAL segments, {raw / 2**20:,.0f} MiB raw; "
        f"archiver: {run.archived} archived, {args.workers} workers, zstd level {args.level}"
    )
    print(f"stored / raw bytes: {run.stored_bytes / run.raw_bytes:.3f}")
    print(f"baseline (one archive_wal process per segment, {len(sample)} segments): {baseline_rate:,.1f} MB/s")
    print(f"archiver: {archiver_rate:,.1f} MB/s made durable, compressed and checksummed")
    print(f"archiver / baseline: {archiver_rate / baseline_rate:.1f}x (target >= 5x)")
    print(f"archiver / {TARGET_MB_S:.0f} MB/s: {archiver_rate / TARGET_MB_S:.2f} (target >= 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
