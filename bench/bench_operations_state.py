#!/usr/bin/env python
"""Where the operations state lives: a database of its own, or carried over into each restored database.

    eval "$(scripts/services env)" && .venv/bin/python bench/bench_operations_state.py          # scale 20
    eval "$(scripts/services env)" && .venv/bin/python bench/bench_operations_state.py --quick  # scale 2

Throw-away databases `test_<DB_NAME>_opsstate` (+ `_ops`) are created, migrated, seeded and dropped.
Figures, each against a baseline measured in the same run (median of --rounds):
  carry-over : a full restore plus copying the operations tables (a realistic volume: 90 days of task
               runs, a year of backups, slow-query history, one snapshot of the audit log) from the live
               database into the restored one before the swap, vs the restore alone (what a database of
               its own costs a restore: nothing)
  snapshot   : copying the audit-log table into the operations database (COPY between two databases)
               vs `CREATE TABLE … AS SELECT` inside the same database (what a database of its own
               costs a snapshot)
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
import uuid
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import bench_database, median, setup_django  # noqa: E402

setup_django("opsstate")

from django.db import DEFAULT_DB_ALIAS, connections, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from dbops.conf import operations_alias  # noqa: E402
from dbops.engines import get_connector  # noqa: E402
from dbops.engines.postgresql import tools  # noqa: E402
from dbops.models import BackupRecord, SlowQuery, TaskRun  # noqa: E402
from dbops.services.backups.create import backup_create  # noqa: E402
from dbops.services.backups.restore import backup_restore  # noqa: E402
from multipult.core.services.seeding import seed_create  # noqa: E402


def operations_volume(snapshot_table: str) -> None:
    """What a year of operations leaves in the state: task runs, backups, slow queries and a snapshot."""
    now = timezone.now()
    TaskRun.objects.bulk_create(
        TaskRun(task_id=str(uuid.uuid4()), task_name="run_backup", status="succeeded", started_at=now)
        for _ in range(5000)
    )
    BackupRecord.objects.bulk_create(
        BackupRecord(
            status="deleted",
            started_at=now - dt.timedelta(days=day),
            engine="postgresql",
            database_name="x",
            format="custom",
        )  # fmt: skip
        for day in range(365)
    )
    SlowQuery.objects.bulk_create(
        SlowQuery(
            fingerprint=uuid.uuid4().hex,
            statement=f"SELECT {i}",
            sample_sql=f"SELECT {i}",
            first_seen=now,
            last_seen=now,
        )  # fmt: skip
        for i in range(10000)
    )
    ops = get_connector(operations_alias())
    with transaction.atomic(using=DEFAULT_DB_ALIAS), transaction.atomic(using=ops.alias):
        get_connector().table_copy_to(snapshot_table, ops, "dbops_snap_bench_core_auditlog")


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def carry_over(source: str, target: str) -> None:
    """The alternative's extra step: the operations tables' rows from the live database into the restored one."""
    settings_dict = connections[DEFAULT_DB_ALIAS].settings_dict
    env = tools.child_environment(settings_dict)
    base = tools.connection_arguments(settings_dict)
    tables = [arg for pattern in ("dbops_*", "django_celery_beat_*") for arg in ("--table", pattern)]
    dump = subprocess.Popen(
        [tools.tool_require("pg_dump"), *base, "--dbname", source, "--data-only", *tables],
        stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    subprocess.run(
        [tools.tool_require("psql"), *base, "--dbname", target, "-X", "-q", "-v", "ON_ERROR_STOP=1"],
        stdin=dump.stdout, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    if dump.wait() != 0:
        raise SystemExit("pg_dump of the operations tables failed")


def fresh_scratch(name: str, schema_from: str) -> None:
    """An empty database holding the operations tables' schema, as a restored one would (not timed)."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    schema_copy(schema_from, name)


def schema_copy(source: str, target: str) -> None:
    settings_dict = connections[DEFAULT_DB_ALIAS].settings_dict
    env = tools.child_environment(settings_dict)
    base = tools.connection_arguments(settings_dict)
    schema = subprocess.run(
        [tools.tool_require("pg_dump"), *base, "--dbname", source, "--schema-only", "--table", "dbops_*",
         "--table", "django_celery_beat_*"], capture_output=True, env=env, check=True,
    ).stdout  # fmt: skip
    subprocess.run(
        [tools.tool_require("psql"), *base, "--dbname", target, "-X", "-q"],
        input=schema, env=env, check=True, capture_output=True,
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="scale 2, 1 round")
    args = parser.parse_args()
    scale, rounds = (2, 1) if args.quick else (args.scale, args.rounds)
    with bench_database():
        seed_create(scale=scale, seed=1)
        operations_volume("core_auditlog")
        data, ops = get_connector(), get_connector(operations_alias())
        audit_rows = data.table_counts()["core_auditlog"]
        backup_record = backup_create(compression="zstd")

        restore_only, with_carry, same_db, cross_db = [], [], [], []
        scratch = f"{data.database_name}_carry"  # stands in for the freshly restored database
        for round_number in range(rounds):
            fresh_scratch(scratch, ops.database_name)
            restore = timed(lambda: backup_restore(backup_record=backup_record, safety_backup=False))
            carry = timed(lambda: carry_over(ops.database_name, scratch))
            restore_only.append(restore)
            with_carry.append(restore + carry)
            data = get_connector()
            for name in data.pre_restore_databases():
                data.drop_database(name, force=True)
            with transaction.atomic(using=DEFAULT_DB_ALIAS), transaction.atomic(using=ops.alias):
                same_db.append(timed(partial(data.table_copy_to, "core_auditlog", data, f"bench_same_{round_number}")))
                cross_db.append(timed(partial(data.table_copy_to, "core_auditlog", ops, f"bench_cross_{round_number}")))
                transaction.set_rollback(True, using=DEFAULT_DB_ALIAS)  # the copies go with the rollback
                transaction.set_rollback(True, using=ops.alias)
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')

    print(f"database: scale {scale} ({audit_rows} audit rows), operations state of a year, {rounds} round(s)")
    print(
        f"carry-over : restore + carry-over / restore alone = {median(with_carry) / median(restore_only):.2f}  "
        f"({median(with_carry):.2f} s vs {median(restore_only):.2f} s)"
    )
    print(
        f"snapshot   : copy into the operations database / copy inside one database = "
        f"{median(cross_db) / median(same_db):.2f}  ({median(cross_db):.2f} s vs {median(same_db):.2f} s, "
        f"{audit_rows} rows)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
