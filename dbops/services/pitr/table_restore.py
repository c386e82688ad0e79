"""`pitr restore-table TABLE --target-time T`: one table as of a past moment, when no backup holds it
then. The newest base backup before T is unpacked and its WAL replayed to T in a scratch server (as the
drill does), the table's rows are read there, and they replace the live table's rows in one transaction,
or go into a new table. Nothing but that table (or the new one) changes; the scratch server is gone after."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS

from dbops.engines import get_connector
from dbops.engines.postgresql.server import server_params
from dbops.engines.postgresql.table_rewind import TableRows, copy_out, live_table_check, rows_load
from dbops.exceptions import DbopsError, PitrError
from dbops.models import BackupRecord, RestoreRecord
from dbops.services.backups.restore_history import restore_record_finish, restore_record_start
from dbops.services.pitr.drill import base_backup_replay
from dbops.services.pitr.recovery import restore_base_backup_checked
from dbops.services.pitr.restore_targets import restore_target_resolve

logger = logging.getLogger(__name__)

REPLAY_TIMEOUT = 3600.0
TABLE_NAME_LIMIT = 63


@dataclass
class TableRestoreResult:
    table: str
    into: str  # the table that now holds the rows: `table` itself, or the new name
    target_time: datetime
    base_backup_id: int
    rows: int
    replayed_to_lsn: str
    restore_record_id: int | None = None  # the RestoreRecord of this restore (None: it could not be written)
    warnings: list[str] = field(default_factory=list)


def _check_name(name: str, parameter: str) -> None:
    if not name or len(name) > TABLE_NAME_LIMIT or "." in name or "\x00" in name:
        raise PitrError(f"{name!r} is not a table name of the public schema.", parameter=parameter)


@dataclass
class TableRestorePlan:
    """What a table restore would do, checked before anything runs: the admin shows it above the typed
    confirmation, and the restore itself starts from it."""

    table: str
    into: str
    target_time: datetime
    base_backup: BackupRecord
    database_alias: str
    database_name: str
    current_rows: int  # rows of the live `table` now (what an in-place restore replaces)
    live_settings: dict = field(repr=False)  # the DATABASES entry the rows are loaded through (a password)

    @property
    def written_table(self) -> str:
        return self.into or self.table

    def describe(self) -> str:
        where = (
            f"into the new table {self.into}"
            if self.into
            else f"in place of the {self.current_rows:,} rows now in {self.table}"
        )
        return (
            f"The rows {self.table} had at {self.target_time.isoformat()} (base backup #{self.base_backup.pk} and WAL "
            f"replayed in a scratch server) are written {where} of database {self.database_name}, in one transaction."
        )


def table_restore_plan(
    *, table: str, target_time: datetime, into: str = "", database: str = DEFAULT_DB_ALIAS
) -> TableRestorePlan:
    """Checks everything a table restore can know before the replay: the names, the moment, a base backup
    and WAL that reach it, the live table (and that `into` is free). PitrError naming what is wrong."""
    _check_name(table, "table")
    if into:
        _check_name(into, "into")
        if into == table:
            raise PitrError("The new table must have another name than the table itself.", parameter="into")
    live = server_params(database)  # settings.DATABASES as PITR reads it (like the other pitr commands)
    target = restore_target_resolve(target_time=target_time)
    record = restore_base_backup_checked(target=target)
    current_rows = live_table_check(live["settings"], database=live["dbname"], table=table, into=into)
    return TableRestorePlan(
        table=table,
        into=into,
        target_time=target_time,
        base_backup=record,
        database_alias=database,
        database_name=live["dbname"],
        current_rows=current_rows,
        live_settings=live["settings"],
    )


def pitr_table_restore(
    *,
    table: str,
    target_time: datetime,
    into: str = "",
    confirm: bool = False,
    database: str = DEFAULT_DB_ALIAS,
    timeout: float = REPLAY_TIMEOUT,
    triggered_by: str = BackupRecord.Trigger.CLI,
    triggered_by_user: str = "",
) -> TableRestoreResult:
    """Brings back the rows `table` had at `target_time` (replacing its current rows, or into the new
    table `into`). Refuses without `confirm`; PitrError when no base backup and WAL reach the moment.
    Once planned, the restore is a RestoreRecord (tables: the table written; backup: the base backup),
    running, then succeeded or failed, as every restore is.
    The one implementation behind `pitr restore-table`, the admin page and the task."""
    _check_name(table, "table")
    if into:
        _check_name(into, "into")
    if not confirm:
        where = f"into the new table {into}" if into else f"in place of the current rows of {table}"
        raise PitrError(f"This writes the rows {table} had at {target_time.isoformat()} {where}.", parameter="confirm")
    plan = table_restore_plan(table=table, target_time=target_time, into=into, database=database)
    started = time.perf_counter()
    restore_record = restore_record_start(
        backup_record=plan.base_backup,
        input_path=None,
        tables=[plan.written_table],
        connector=get_connector(database),
        source=f"PITR: {table} as of {target_time.isoformat()} (base backup #{plan.base_backup.pk})"
        + (f" into {into}" if into else ""),
        by=triggered_by,
        user=triggered_by_user,
    )
    try:
        result = _table_restore(plan, timeout=timeout)
    except BaseException as exc:
        restore_record_finish(
            restore_record,
            status=RestoreRecord.Status.FAILED,
            started=started,
            error=str(exc) if isinstance(exc, DbopsError) else f"{type(exc).__name__}: {exc}",
        )
        raise
    not_recorded = restore_record_finish(restore_record, status=RestoreRecord.Status.SUCCEEDED, started=started)
    result.restore_record_id = restore_record.pk
    result.warnings += [not_recorded] if not_recorded else []
    return result


def _table_restore(plan: TableRestorePlan, *, timeout: float) -> TableRestoreResult:
    """pitr_table_restore's work: replay in a scratch server, read the table there, load it here."""
    table, target_time, into = plan.table, plan.target_time, plan.into
    copied: list[TableRows] = []
    with tempfile.TemporaryDirectory(prefix="dbops-table-") as folder:
        spool = Path(folder) / "table.copy"
        recovery = base_backup_replay(
            record=plan.base_backup,
            target_time=target_time,
            timeout=timeout,
            while_paused=lambda cursor: copied.append(
                copy_out(cursor, table=table, spool=spool, moment=target_time.isoformat())
            ),
        )
        rows_load(plan.live_settings, database=plan.database_name, rows=copied[0], into=into)
    logger.info("table %s restored as of %s into %s: %d rows", table, target_time, into or table, copied[0].rows)
    return TableRestoreResult(
        table=table,
        into=into or table,
        target_time=target_time,
        base_backup_id=plan.base_backup.pk,
        rows=copied[0].rows,
        replayed_to_lsn=recovery.replay_lsn,
    )
