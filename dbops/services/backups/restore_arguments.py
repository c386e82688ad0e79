"""What a restore is asked to do: the keyword arguments restore_plan and backup_restore share, and
the one place they get their defaults and are checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from django.db import DEFAULT_DB_ALIAS

from dbops.exceptions import RestoreError
from dbops.models import BackupRecord


class RestoreRequest(TypedDict, total=False):
    """What to restore and how: the keyword arguments restore_plan and backup_restore share."""

    backup_record: BackupRecord | None  # a managed backup, or
    input_path: Path | str | None  # a backup file
    database: str  # the alias to restore into (default "default")
    tables: list[str] | None  # only these tables' rows; None: the whole database
    jobs: int  # parallel restore jobs (custom format)
    safety_backup: bool  # take a backup of the database first (default True)
    verify: bool  # check a file against its sidecar or manifest first (default True)


@dataclass(frozen=True)
class RestoreArguments:
    backup_record: BackupRecord | None
    input_path: Path | None
    database: str
    tables: list[str]
    jobs: int
    safety_backup: bool
    verify: bool


def restore_arguments(request: RestoreRequest) -> RestoreArguments:
    """The request with its defaults, checked before anything else is done."""
    backup_record, input_path = request.get("backup_record"), request.get("input_path")
    tables, jobs = request.get("tables"), request.get("jobs", 1)
    if (backup_record is None) == (input_path is None):
        raise RestoreError("Give exactly one of a backup id or an input file.")
    if jobs < 1:
        raise RestoreError(f"The number of parallel jobs must be at least 1; got {jobs}.", parameter="jobs")
    if tables is not None and not [t for t in tables if t]:
        raise RestoreError("The list of tables to restore names no table.", parameter="tables")
    return RestoreArguments(
        backup_record=backup_record,
        input_path=Path(input_path) if input_path is not None else None,
        database=request.get("database", DEFAULT_DB_ALIAS),
        tables=[t.strip() for t in tables or [] if t.strip()],
        jobs=jobs,
        safety_backup=request.get("safety_backup", True),
        verify=request.get("verify", True),
    )
