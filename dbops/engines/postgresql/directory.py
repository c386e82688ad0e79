"""Parallel dumps: `pg_dump -Fd -j N` writes a folder of files at once, which is packed into one tar
(toc.dat first, so the artifact layer can tell it from other content) and streamed into the backup
pipeline. A stock restore is plain decompression, `tar -x`, then `pg_restore -j N` on the folder."""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from dbops.engines.postgresql import tools
from dbops.exceptions import BackupError, RestoreError

TOC_NAME = "toc.dat"
TAR_BUFFER = 1 << 20  # the pipeline is fed in 1 MiB writes, as from pg_dump's pipe


def dump_packed(args: list[str], stream: BinaryIO, *, jobs: int, spool: Path | None, env: Mapping[str, str]) -> None:
    """Runs pg_dump `args` (directory format) with `jobs` workers into a folder under `spool` (the system
    temp folder if None), then writes that folder to `stream` as one tar."""
    with tempfile.TemporaryDirectory(prefix="pg-dump-", dir=spool) as folder:
        target = Path(folder) / "dump"
        tools.tool_run([*args, f"--jobs={jobs}", "--file", str(target)], env=env, error=BackupError, with_workers=True)
        pack(target, stream)


def pack(folder: Path, stream: BinaryIO) -> None:
    """Writes the files of `folder` to `stream` as one tar, in 1 MiB writes (tarfile's stream mode copies
    16 KiB at a time through a growing buffer: several times slower on a dump of gigabytes)."""
    names = sorted(path.name for path in folder.iterdir())
    if TOC_NAME not in names:
        raise BackupError(f"The parallel dump wrote no {TOC_NAME}; nothing was kept.")
    names.remove(TOC_NAME)
    written = 0
    for name in (TOC_NAME, *names):
        path = folder / name
        member = tarfile.TarInfo(name)
        stat = path.stat()
        member.size, member.mtime, member.mode = stat.st_size, int(stat.st_mtime), 0o600
        # GNU: no extended header before toc.dat (PAX writes one), and members above 8 GiB still fit
        header = member.tobuf(format=tarfile.GNU_FORMAT)
        stream.write(header)
        with open(path, "rb") as source:
            copied = 0
            while chunk := source.read(TAR_BUFFER):
                stream.write(chunk)
                copied += len(chunk)
        if copied != member.size:
            raise BackupError(f"{name} of the parallel dump changed while it was packed; nothing was kept.")
        padding = -copied % tarfile.BLOCKSIZE
        stream.write(tarfile.NUL * padding)
        written += len(header) + copied + padding
    end = 2 * tarfile.BLOCKSIZE  # the end-of-archive marker, then zeros to a whole record as tar writes it
    stream.write(tarfile.NUL * (end + (-(written + end) % tarfile.RECORDSIZE)))


@contextmanager
def archive_for_restore(dump_path: Path, *, fmt: str) -> Iterator[Path]:
    """What pg_restore reads for a decoded dump: the file itself, or (directory format) its tar unpacked
    beside it for as long as the block runs."""
    if fmt != "directory":
        yield dump_path
        return
    with tempfile.TemporaryDirectory(prefix="pg-restore-", dir=dump_path.parent) as folder:
        target = Path(folder) / "dump"
        target.mkdir()
        try:
            with tarfile.open(dump_path, mode="r:") as archive:
                archive.extractall(target, filter="data")  # "data": no absolute paths, links or devices
        except (tarfile.TarError, OSError) as exc:
            raise RestoreError(f"The directory-format backup {dump_path.name} cannot be unpacked: {exc}") from exc
        yield target
