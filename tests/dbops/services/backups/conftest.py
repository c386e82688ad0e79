"""Real filesystem faults for the backup tests: small tmpfs disks that fill up, folders that are
bind-mounted and then unmounted. Mounting needs root (this machine and CI run the suite as root)."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def _umount(target: Path) -> None:
    subprocess.run(["umount", str(target)], check=False, capture_output=True)


@pytest.fixture
def mounts(tmp_path):
    """`mounts.tmpfs(folder, size)` mounts a size-limited tmpfs (a real disk that runs out of space) on a
    new folder; `mounts.bind(source, target)` / `mounts.unmount(target)` mount a folder elsewhere and take
    it away again. Everything still mounted is unmounted at teardown."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs or a bind mount needs root (this machine and CI run as root)")

    class Mounts:
        def __init__(self) -> None:
            self.mounted: list[Path] = []

        def tmpfs(self, folder: Path, size: str) -> Path:
            folder.mkdir(parents=True, exist_ok=True)
            _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder))
            self.mounted.append(folder)
            return folder

        def bind(self, source: Path, target: Path) -> Path:
            target.mkdir(parents=True, exist_ok=True)
            _mount("--bind", str(source), str(target))
            self.mounted.append(target)
            return target

        def unmount(self, target: Path) -> None:
            subprocess.run(["umount", str(target)], check=True, capture_output=True)
            self.mounted.remove(target)

    mounts = Mounts()
    yield mounts
    for target in reversed(mounts.mounted):
        _umount(target)


def fill_disk(folder: Path) -> None:
    """Writes a filler file into `folder` until its filesystem has no byte left (ENOSPC)."""
    with open(folder / "filler", "ab", buffering=0) as handle:
        for block in (1 << 16, 512, 1):
            try:
                while True:
                    handle.write(b"\0" * block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its SHA-256 (what a fault must leave exactly as it was)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
