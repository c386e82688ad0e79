"""What dbops tells the project, so it can keep its own records (an audit log) without dbops knowing it.

Receivers run in the process that did the work, after it is done; one that raises is logged and
reported as a warning of the operation, never undoes it (send_robust).

- backup_deleted(sender=BackupRecord, backup_record, reason, removed, deleted_at): a backup's artifacts
  were removed (`removed`: "local:<name>" / "s3:<key>" of each file) and its record marked deleted.
- database_restored(sender=RestoreRecord, restore_record): a restore succeeded; the record holds the
  facts (source backup or file, database, tables, safety backup, previous database, who, when). Sent
  after the restore, so a receiver writes into the restored database.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

logger = logging.getLogger(__name__)

backup_deleted = Signal()
database_restored = Signal()


def signal_send(signal: Signal, sender: type, **facts) -> list[str]:
    """Sends `signal`; returns one line per receiver that raised (logged too), for the caller to report."""
    failures = []
    for receiver, outcome in signal.send_robust(sender=sender, **facts):
        if isinstance(outcome, Exception):
            name = getattr(receiver, "__qualname__", repr(receiver))
            logger.error("receiver %s failed: %s", name, outcome, exc_info=outcome)
            failures.append(f"receiver {name} failed: {type(outcome).__name__}: {outcome}")
    return failures
