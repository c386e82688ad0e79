"""The archive_command of the asynchronous WAL archiver: `python …/dbops/walspool.py SPOOL %f [WAIT_SECONDS]`
(run as a script from the data directory, as dbops.engines.postgresql.server.pitr_async_archive_command writes it).

It imports nothing of Django (a start-up of a few tens of milliseconds instead of ~0.45 s): the
long-running archiver (`manage.py wal_archiver`) pushes every segment the server has ready, in parallel,
and writes SPOOL/<name>.ok once the segment is durable in the archive; this command waits for that
acknowledgement and exits 0, so the server recycles only acknowledged segments (the archiver removes
the .ok once the server has marked the segment done). With no
acknowledgement in time (the archiver stopped, or storage failing: SPOOL/<name>.error says why) it
exits 1 and the server keeps the segment and asks again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

WAIT_SECONDS = 60.0
POLL_SECONDS = 0.01


def spool_acknowledged(spool: Path, name: str, *, wait_seconds: float = WAIT_SECONDS) -> tuple[bool, str]:
    """Waits for the archiver's acknowledgement of `name`; returns (acknowledged, why not)."""
    ok, error = spool / f"{name}.ok", spool / f"{name}.error"
    deadline = time.monotonic() + wait_seconds
    while True:
        if ok.exists():
            return True, ""
        if time.monotonic() >= deadline:
            why = _error_text(error) or "is the wal_archiver running?"
            return False, f"WAL file {name} not acknowledged by the archiver within {wait_seconds:g}s: {why}"
        time.sleep(POLL_SECONDS)


def _error_text(error: Path) -> str:
    try:
        return error.read_text(errors="replace").strip()
    except OSError:  # none, or the archiver's user keeps it unreadable: the generic advice then
        return ""


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or "/" in argv[1]:
        print("usage: python walspool.py SPOOL WALNAME [WAIT_SECONDS]", file=sys.stderr)
        return 2
    spool = Path(argv[0])
    if not spool.is_dir():
        print(f"The WAL spool {spool} does not exist.", file=sys.stderr)
        return 1
    wait_seconds = float(argv[2]) if len(argv) == 3 else WAIT_SECONDS
    acknowledged, why = spool_acknowledged(spool, argv[1], wait_seconds=wait_seconds)
    if not acknowledged:
        print(why, file=sys.stderr)
    return 0 if acknowledged else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
