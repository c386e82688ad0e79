"""Work folders for restores and verifications (a download from S3, the decoded dump): findable as
`<system temp dir>/dbops-work-<purpose>-*`, each holding a lock file its owner keeps flock'ed for as
long as it lives. The kernel drops the lock when the owner dies, even by SIGKILL, so
`work_folders_remove_dead` tells a dead owner's folder (removed) from a live one's (left alone)."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

WORK_PREFIX = "dbops-work-"
STAGING_PREFIX = "dbops-new-"  # a folder being set up; renamed to WORK_PREFIX… once locked
OWNER_LOCK = ".owner.lock"


@dataclass
class RemovedFolder:
    path: Path
    owner: str  # "pid 1234 restore", as the owner wrote it


def work_root() -> Path:
    return Path(tempfile.gettempdir())


@contextmanager
def work_folder(*, purpose: str) -> Iterator[Path]:
    """A fresh folder, locked by this process until the block ends, then removed with its contents."""
    root = work_root()
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    lock_fd = os.open(staging / OWNER_LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)  # not inherited by children
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        os.write(lock_fd, f"pid {os.getpid()} {purpose}\n".encode())
        # Renamed only once locked: a folder under the searched name always has a live lock or a dead owner.
        folder = root / f"{WORK_PREFIX}{purpose}-{staging.name.removeprefix(STAGING_PREFIX)}"
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        os.close(lock_fd)
        raise
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock_fd)


def work_folders_remove_dead() -> tuple[list[RemovedFolder], list[str]]:
    """Removes the work folders whose owner is gone; returns them, and one line per folder that could not be removed.

    Costs one directory listing when there is nothing to do."""
    removed: list[RemovedFolder] = []
    failed: list[str] = []
    root = work_root()
    try:
        candidates = sorted(entry for entry in os.listdir(root) if entry.startswith((WORK_PREFIX, STAGING_PREFIX)))
    except OSError:
        return removed, failed
    for name in candidates:
        folder = root / name
        try:
            lock_fd = os.open(folder / OWNER_LOCK, os.O_RDWR)
        except OSError:  # gone meanwhile, not ours to open, or a staging folder still without its lock
            continue
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its owner is alive
            owner = os.pread(lock_fd, 200, 0).decode(errors="replace").strip() or "owner unknown"
            try:
                shutil.rmtree(folder)  # while holding the lock, so no second cleaner reports it too
            except FileNotFoundError:
                continue  # its owner finished and removed it between our open and our lock
            except OSError as exc:
                failed.append(f"could not remove the work folder {folder} of a dead run ({owner}): {exc}")
                continue
            removed.append(RemovedFolder(path=folder, owner=owner))
        finally:
            os.close(lock_fd)
    return removed, failed
