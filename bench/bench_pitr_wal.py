#!/usr/bin/env python
"""What archiving WAL through `archive_wal` costs, on real WAL, as ratios measured in one run.

A throwaway cluster (the PITR tests' helper: initdb as the postgres user in a temporary folder, free
loopback port, 16 MB segments) runs `pgbench -i` while `cp` archives its WAL; then each segment is
archived again in-process through `wal_archive` into a temporary local storage.

  wal_stored_ratio = bytes stored by archive_wal (zstd) / raw WAL bytes
  archive_cost     = time of wal_archive (compress + SHA-256 + store + manifest) / time of a plain copy

Needs root (initdb runs as postgres via runuser) and the PostgreSQL 15 server binaries. `--quick`
uses pgbench scale 1 instead of 10. The cluster and its files are removed at the end.
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

from dbops.services.pitr.wal_archive import WAL_NAME, wal_archive  # noqa: E402
from tests.dbops.services.pitr.cluster import PG_BIN, ClusterFactory, as_db_owner  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="pgbench scale 1 instead of 10.")
    args = parser.parse_args()
    scale = 1 if args.quick else 10
    factory = ClusterFactory()
    try:
        spool = factory.root / "spool"
        spool.mkdir()
        shutil.chown(spool, "postgres", "postgres")
        cluster = factory.new("bench")
        as_db_owner(
            str(PG_BIN / "initdb"), "-D", str(cluster.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--locale=C.UTF-8", env=factory.env,
        )  # fmt: skip
        with (cluster.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {cluster.port}\nunix_socket_directories = '{factory.root}'\n"
                f"wal_level = replica\narchive_mode = on\narchive_command = 'cp %p {spool}/%f'\nfsync = off\n"
            )
        cluster.start()
        subprocess.run(
            [str(PG_BIN / "pgbench"), "-i", "-q", "-s", str(scale), "-h", "127.0.0.1", "-p", str(cluster.port),
             "-U", "postgres", "postgres"],
            check=True, capture_output=True,
        )  # fmt: skip
        last = cluster.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        deadline = time.monotonic() + 120
        while (cluster.query("SELECT last_archived_wal FROM pg_stat_archiver")[0][0] or "") < last:
            if time.monotonic() > deadline:
                raise SystemExit("WAL was not archived in time")
            time.sleep(0.2)
        cluster.stop()
        segments = sorted(p for p in spool.iterdir() if WAL_NAME.match(p.name) and len(p.name) == 24)

        storage_dir = Path(tempfile.mkdtemp(prefix="bench-wal-storage-"))
        copy_dir = Path(tempfile.mkdtemp(prefix="bench-wal-copy-"))
        storages = {
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            "backups": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": storage_dir}},
        }
        raw = stored = 0
        archive_seconds = copy_seconds = 0.0
        try:
            with override_settings(STORAGES=storages, PITR_STORAGE="local"):
                for segment in segments:
                    started = time.perf_counter()
                    shutil.copyfile(segment, copy_dir / segment.name)
                    copy_seconds += time.perf_counter() - started
                    started = time.perf_counter()
                    result = wal_archive(path=segment, name=segment.name, cluster_id="1")
                    archive_seconds += time.perf_counter() - started
                    raw += result.size_bytes
                    stored += result.stored_bytes
        finally:
            shutil.rmtree(storage_dir, ignore_errors=True)
            shutil.rmtree(copy_dir, ignore_errors=True)
    finally:
        factory.close()
    print(f"pgbench scale {scale}: {len(segments)} WAL segments, {raw / 2**20:,.0f} MiB raw")
    print(f"wal_stored_ratio (archive_wal stored / raw WAL bytes): {stored / raw:.3f}")
    print(f"archive_cost (wal_archive time / plain copy time): {archive_seconds / copy_seconds:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
