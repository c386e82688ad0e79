"""The asynchronous WAL archiver (`manage.py wal_archiver`), as pgBackRest's archive-async: one
long-running process pushes every WAL file the server has ready (pg_wal/archive_status/*.ready) through
`wal_archive` (zstd, SHA-256, manifest last) on several threads at once, ahead of the server asking for
each, and acknowledges a file (SPOOL/<name>.ok, written atomically) only once it is durable in the
archive. The server's archive_command (`python -m dbops.walspool SPOOL %f`) only waits for that
acknowledgement, so the server recycles nothing unacknowledged: a killed archiver loses no segment (a
half-stored one has no manifest and is stored again by the next run).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from dbops.artifacts.storage import atomic_writer, fsync_path
from dbops.engines.postgresql.server import server_wal_path, server_wal_ready
from dbops.exceptions import PitrError
from dbops.services.pitr.wal_archive import WalArchiveResult, cluster_id_from_data_dir, pitr_storage, wal_archive

logger = logging.getLogger(__name__)

RETRY_FAILED_SECONDS = 5.0


@dataclass
class ArchiverRun:
    """What one run of the archiver did."""

    archived: int = 0  # files stored by this run
    already_archived: int = 0  # identical files found in the archive (a restart after a kill)
    raw_bytes: int = 0
    stored_bytes: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # name -> why (the newest failure of each)


def wal_archiver_run(
    *,
    data_dir: Path | str,
    spool: Path | str,
    cluster_id: str | None = None,
    storage: str | None = None,
    workers: int = 4,
    level: int = 1,  # measured (bench/bench_wal_archiver.py): twice the rate of level 3, no more bytes
    once: bool = False,
    poll_seconds: float = 0.05,
    should_stop: Callable[[], bool] = lambda: False,
) -> ArchiverRun:
    """Archives and acknowledges the server's ready WAL files until `should_stop()` (or, with `once`,
    until every ready file is acknowledged or failed once). Up to `workers` files are in flight, each
    compressed with zstd at `level`."""
    data_dir, spool = Path(data_dir), Path(spool)
    if workers < 1:
        raise PitrError("The archiver needs at least one worker.", parameter="workers")
    if not spool.is_dir():
        raise PitrError(f"The WAL spool {spool} does not exist (create it, writable by the server).", parameter="spool")
    cluster_id = cluster_id or cluster_id_from_data_dir(data_dir)
    _kind, backend = pitr_storage(storage)  # a bad storage setting fails here, before any file
    run, in_flight, failed_at = ArchiverRun(), {}, {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wal-archiver") as pool:
        while True:
            ready = server_wal_ready(data_dir)
            _acknowledgements_prune(spool, set(ready))
            for name in ready:
                if len(in_flight) >= workers:
                    break
                retry_due = name not in failed_at or (
                    not once and time.monotonic() - failed_at[name] > RETRY_FAILED_SECONDS
                )
                if name in in_flight or (spool / f"{name}.ok").exists() or not retry_due:
                    continue
                in_flight[name] = pool.submit(
                    _archive_and_acknowledge, data_dir, spool, name, cluster_id, storage, backend, level
                )
            if not in_flight:
                if once or should_stop():
                    return run
                time.sleep(poll_seconds)
                continue
            finished, _ = wait(in_flight.values(), timeout=poll_seconds, return_when=FIRST_COMPLETED)
            for name in [name for name, future in in_flight.items() if future in finished]:
                _collect(run, name, in_flight.pop(name), failed_at)
            if should_stop():  # finish what is in flight (it is acknowledged), start nothing new
                for name, future in list(in_flight.items()):
                    _collect(run, name, future, failed_at)
                return run


def _collect(run: ArchiverRun, name: str, future: Future, failed_at: dict[str, float]) -> None:
    try:
        result: WalArchiveResult = future.result()
    except Exception as exc:  # storage down, a conflict: the server keeps the file, we retry later
        run.failures[name] = str(exc) or type(exc).__name__
        failed_at[name] = time.monotonic()
        logger.warning("could not archive %s: %s", name, run.failures[name])
        return
    failed_at.pop(name, None)
    run.failures.pop(name, None)
    run.archived += not result.already_archived
    run.already_archived += result.already_archived
    run.raw_bytes += result.size_bytes
    run.stored_bytes += result.stored_bytes


def _archive_and_acknowledge(
    data_dir: Path, spool: Path, name: str, cluster_id: str, storage, backend, level: int
) -> WalArchiveResult:
    try:
        wal_path = server_wal_path(data_dir, name)
        result = wal_archive(path=wal_path, name=name, cluster_id=cluster_id, storage=storage, level=level)
        _make_durable(backend, [result.storage_name, result.storage_name.removesuffix(".zst") + ".json"])
    except Exception as exc:
        _write_atomically(spool / f"{name}.error", f"{exc}\n".encode())
        raise
    _write_atomically(spool / f"{name}.ok", f"{result.sha256}\n".encode())
    (spool / f"{name}.error").unlink(missing_ok=True)
    return result


def _make_durable(backend, names: list[str]) -> None:
    """fsyncs what local storage wrote (an S3 PUT is durable once answered)."""
    folders = set()
    for name in names:
        try:
            path = Path(backend.path(name))
        except NotImplementedError:  # not a file system
            return
        fsync_path(path)
        folders.add(path.parent)
    for folder in folders:
        fsync_path(folder)


def _write_atomically(path: Path, content: bytes) -> None:
    with atomic_writer(path, replace=True) as handle:
        handle.write(content)


def _acknowledgements_prune(spool: Path, ready: set[str]) -> None:
    """Removes the acknowledgements of files the server has marked done (no longer ready)."""
    for entry in spool.iterdir():
        for suffix in (".ok", ".error"):
            if entry.name.endswith(suffix) and entry.name.removesuffix(suffix) not in ready:
                entry.unlink(missing_ok=True)
