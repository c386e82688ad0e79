"""`pitr check`: proves the WAL archive works end to end now, as pgBackRest's `check` does: the server
switches to a new WAL file, and the one it completed must appear in our storage (its manifest, written
last) within a bounded time. Fails early when the archiver reports that very file failing."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS

from dbops.engines.postgresql.server import pitr_settings_check, server_archiver_status, server_wal_switch
from dbops.exceptions import PitrError
from dbops.services.pitr.wal_archive import pitr_storage, wal_is_archived

POLL_SECONDS = 0.25
# The server counts an archived file only once archive_command has exited, a moment after our manifest
# (written last) appears: the report waits this long for pg_stat_archiver to show it.
STATS_LAG_SECONDS = 5.0


@dataclass
class PitrCheckResult:
    cluster_id: str
    segment: str
    storage: str
    waited_seconds: float
    archiver: dict


def pitr_check(*, using: str = DEFAULT_DB_ALIAS, storage: str | None = None, timeout: float = 60.0) -> PitrCheckResult:
    """Switches WAL on the server and waits until the completed file is archived in our storage.

    Raises PitrError (one line, with pg_stat_archiver's last failure) when the server is not set up,
    when the archiver fails on that file, or when `timeout` seconds pass first."""
    if timeout <= 0:
        raise PitrError(f"The timeout must be positive; got {timeout:g} seconds.", parameter="timeout")
    storage_kind, _backend = pitr_storage(storage)
    report = pitr_settings_check(using=using)
    if report.problems:
        names = ", ".join(f"{check.name}={check.actual!r}" for check in report.problems)
        raise PitrError(f"The server is not set up for PITR ({names}); run `pitr setup` for the fixes.")
    switch = server_wal_switch(using=using)
    started = time.monotonic()
    while True:
        if wal_is_archived(cluster_id=switch.cluster_id, name=switch.segment, storage=storage_kind):
            waited = time.monotonic() - started
            return PitrCheckResult(
                cluster_id=switch.cluster_id,
                segment=switch.segment,
                storage=storage_kind,
                waited_seconds=waited,
                archiver=_archiver_caught_up(using, switch.segment, deadline=time.monotonic() + STATS_LAG_SECONDS),
            )
        archiver = server_archiver_status(using=using)
        failed_now = archiver["last_failed_wal"] == switch.segment and (
            archiver["last_failed_time"] is not None and archiver["last_failed_time"] >= switch.switched_at
        )
        if failed_now and not wal_is_archived(cluster_id=switch.cluster_id, name=switch.segment, storage=storage_kind):
            raise PitrError(
                f"The archiver is failing: archive_command failed on {switch.segment} at "
                f"{archiver['last_failed_time'].isoformat()} ({archiver['failed_count']} failures in all); "
                "the server log has its error."
            )
        if time.monotonic() - started > timeout:
            raise PitrError(
                f"WAL file {switch.segment} of cluster {switch.cluster_id} was not archived in {storage_kind} storage "
                f"within {timeout:g}s; {_archiver_summary(archiver)}."
            )
        time.sleep(POLL_SECONDS)


def _archiver_caught_up(using: str, segment: str, *, deadline: float) -> dict:
    archiver = server_archiver_status(using=using)
    while (archiver["last_archived_wal"] or "") < segment and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        archiver = server_archiver_status(using=using)
    return archiver


def _archiver_summary(archiver: dict) -> str:
    archived = archiver["last_archived_wal"] or "none"
    if archiver["last_archived_time"] is not None:
        archived += f" at {archiver['last_archived_time'].isoformat()}"
    failed = archiver["last_failed_wal"] or "none"
    if archiver["last_failed_time"] is not None:
        failed += f" at {archiver['last_failed_time'].isoformat()}"
    summary = f"pg_stat_archiver: last archived {archived}, last failed {failed} ({archiver['failed_count']} failures)"
    if not archiver["failed_count"]:  # exit 126/127 or a signal kills the archiver before it counts a failure
        summary += "; no failure counted: archive_command may not even start (wrong path?), see the server log"
    return summary
