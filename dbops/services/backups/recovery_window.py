"""Retention by recovery window: which PITR base backups a policy must keep so that any point of the
last N days stays recoverable (the newest base backup finished before the window opens, and every one
after it; wal_prune then keeps the WAL from the oldest kept one on), and the window that guarantees."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from dbops.models import BackupRecord


@dataclass(frozen=True)
class RecoveryWindow:
    """What a policy's recovery window guarantees for one database's base backups."""

    database_alias: str
    days: int
    asked_from: dt.datetime  # now - days
    guaranteed_from: dt.datetime | None  # the oldest recoverable point; None: no base backup at all
    base_backups: int  # the base backups the window keeps

    @property
    def complete(self) -> bool:
        return self.guaranteed_from is not None and self.guaranteed_from <= self.asked_from

    @property
    def summary(self) -> str:
        head = f"Recovery window of {self.database_alias} ({self.days} days, from {self.asked_from:%Y-%m-%d %H:%M %Z})"
        if self.guaranteed_from is None:
            return f"{head}: no base backup, so no point is recoverable."
        kept = f"{self.base_backups} base backup(s) and the WAL after the oldest"
        if self.complete:
            return f"{head}: guaranteed by {kept}."
        return (
            f"{head}: only from {self.guaranteed_from:%Y-%m-%d %H:%M %Z} (no base backup finished before the window "
            f"opens), by {kept}."
        )

    def as_dict(self) -> dict:
        return {
            "database": self.database_alias,
            "days": self.days,
            "asked_from": self.asked_from.isoformat(),
            "guaranteed_from": self.guaranteed_from.isoformat() if self.guaranteed_from else None,
            "complete": self.complete,
            "base_backups": self.base_backups,
        }


def _finished(backup: BackupRecord) -> dt.datetime:
    return backup.finished_at or backup.started_at  # a base backup is consistent from its end


def recovery_window_keep(
    succeeded_newest_first: Sequence[BackupRecord], *, days: int, now: dt.datetime, database_alias: str
) -> tuple[list[int], RecoveryWindow]:
    """The positions (in `succeeded_newest_first`, finished by `now`) of the base backups the window
    needs, and what it guarantees."""
    asked_from = now - dt.timedelta(days=days)
    finished = [position for position, backup in enumerate(succeeded_newest_first) if _finished(backup) <= now]
    anchor = next((p for p in finished if _finished(succeeded_newest_first[p]) <= asked_from), None)
    kept = [p for p in finished if anchor is None or p <= anchor]
    guaranteed_from = None
    if kept:
        guaranteed_from = asked_from if anchor is not None else _finished(succeeded_newest_first[kept[-1]])
    window = RecoveryWindow(database_alias, days, asked_from, guaranteed_from, len(kept))
    return kept, window
