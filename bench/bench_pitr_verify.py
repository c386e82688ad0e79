#!/usr/bin/env python
"""What proving a PITR base backup costs, and how fast the WAL gap check reads a large archive, as
ratios measured in one run.

A throwaway cluster (the PITR tests' helper: initdb as the postgres user, free loopback port, 1 MB
WAL segments, archive_command = our archive_wal into a temporary local storage) gets `pgbench -i`,
then a base backup. Baseline: unpacking it with its SHA-256 checked, which every `pitr restore` does.

  verify_cost  = checksum + pg_verifybackup (verify_backup ID) / unpack alone
  replay_cost  = checksum + pg_verifybackup + scratch-server WAL replay (--restore-test) / unpack alone
  gap_cost     = wal_coverage over a synthetic listing / sorting the same listing (Python's own floor)

Needs root (initdb runs as postgres via runuser) and the PostgreSQL 15 server binaries, and the
services (`eval "$(scripts/services env)"`: the catalog rows go to the test database and are
deleted at the end). `--quick` uses pgbench scale 1 instead of 10.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multipult.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from dbops.engines.postgresql.wal import wal_file_name  # noqa: E402
from dbops.models import BackupRecord  # noqa: E402
from dbops.services.pitr.recovery import base_backup_unpack, pitr_base_backup_create  # noqa: E402
from dbops.services.pitr.verification import pitr_base_backup_verify  # noqa: E402
from dbops.services.pitr.wal_archive import pitr_storage  # noqa: E402
from dbops.services.pitr.wal_gaps import wal_coverage  # noqa: E402
from tests.dbops.services.pitr.cluster import PG_BIN, ClusterFactory, database_alias, switch_wal_and_wait  # noqa: E402


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="pgbench scale 1 instead of 10.")
    args = parser.parse_args()
    scale = 1 if args.quick else 10
    factory = ClusterFactory()
    local = {**settings.STORAGES["backups"], "OPTIONS": {"location": factory.archive_dir}}
    storages = {**settings.STORAGES, "backups": local}
    os.environ.update({name: value for name, value in factory.env.items() if name != "PATH"})  # scratch server's env
    record = None
    try:
        with override_settings(
            STORAGES=storages,
            PITR_STORAGE="local",
            DBOPS={**getattr(settings, "DBOPS", {}), "PITR_PYTHON": factory.python},
        ):
            source = factory.archiving_source()
            subprocess.run(
                [str(PG_BIN / "pgbench"), "-i", "-q", "-s", str(scale), "-h", "127.0.0.1", "-p", str(source.port),
                 "-U", "postgres", "postgres"],
                check=True, capture_output=True,
            )  # fmt: skip
            with database_alias("bench_pitr", source.port) as alias:
                record = pitr_base_backup_create(using=alias)
            switch_wal_and_wait(source)
            _kind, backend = pitr_storage()
            with tempfile.TemporaryDirectory(prefix="bench-unpack-") as folder:
                unpack_seconds, _ = timed(lambda: base_backup_unpack(backend, record, Path(folder), None))
            verify_seconds, verified = timed(lambda: pitr_base_backup_verify(backup_record=record))
            replay_seconds, replayed = timed(lambda: pitr_base_backup_verify(backup_record=record, restore_test=True))
            if verified.problems or replayed.problems or not replayed.replay_ok:
                raise SystemExit(f"verification failed: {verified.problems or replayed.problems}")
    finally:
        factory.close()
        if record is not None:
            BackupRecord.objects.filter(pk=record.pk).delete()

    segments = 50_000 if args.quick else 500_000
    names = [wal_file_name(1, segment, 1024 * 1024) for segment in range(3, 3 + segments) if segment != segments // 2]
    sort_seconds, _ = timed(lambda: sorted(names, reverse=True))
    gap_seconds, coverage = timed(
        lambda: wal_coverage(names=names, start_wal=names[0], segment_size=1024 * 1024, histories={})
    )
    assert len(coverage.gaps) == 1

    print(f"pgbench scale {scale}: base backup {record.size_bytes / 2**20:,.1f} MiB compressed")
    print(f"verify_cost (checksum + pg_verifybackup / unpack alone): {verify_seconds / unpack_seconds:.2f}x")
    print(f"replay_cost (+ scratch WAL replay / unpack alone): {replay_seconds / unpack_seconds:.2f}x")
    print(
        f"gap_cost ({segments:,} archived names: wal_coverage / sorting them): {gap_seconds / sort_seconds:.1f}x "
        f"({segments / gap_seconds:,.0f} segments/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
