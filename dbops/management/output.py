"""Small presentation helpers shared by dbops commands: progress on a TTY only, JSON output."""

from __future__ import annotations

import json
from typing import Any


class TtyProgress:
    """Prints `label done/total` on one rewritten line, only when stdout is a TTY and not --quiet."""

    def __init__(self, stdout, *, quiet: bool = False) -> None:
        self.stdout = stdout
        stream = getattr(stdout, "_out", stdout)  # Django's OutputWrapper keeps the real stream in _out
        self.enabled = not quiet and hasattr(stream, "isatty") and stream.isatty()
        self._line_open = False

    def __call__(self, label: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        percent = 100 * done // total if total else 100
        self.stdout.write(f"\r{label}: {done:,}/{total:,} ({percent}%)", ending="")
        self.stdout.flush()
        self._line_open = True
        if done >= total:
            self.stdout.write("")
            self._line_open = False

    def close(self) -> None:
        if self.enabled and self._line_open:
            self.stdout.write("")
            self._line_open = False


def write_json(stdout, payload: Any) -> None:
    """One JSON document on stdout (logs go to stderr, so this stays machine-readable)."""
    stdout.write(json.dumps(payload, indent=2, sort_keys=False, default=str))


class TtyByteProgress:
    """Prints `label: <read> read, <written> written, <rate>/s` on one rewritten line, TTY only."""

    def __init__(self, stdout, *, label: str, quiet: bool = False) -> None:
        import time

        self.stdout, self.label = stdout, label
        stream = getattr(stdout, "_out", stdout)
        self.enabled = not quiet and hasattr(stream, "isatty") and stream.isatty()
        self._started = time.monotonic()
        self._clock = time.monotonic
        self._line_open = False

    def __call__(self, read: int, written: int) -> None:
        if not self.enabled:
            return
        elapsed = max(self._clock() - self._started, 1e-6)
        self.stdout.write(
            f"\r{self.label}: {human_bytes(read)} read, {human_bytes(written)} written, "
            f"{human_bytes(int(read / elapsed))}/s   ",
            ending="",
        )
        self.stdout.flush()
        self._line_open = True

    def close(self) -> None:
        if self.enabled and self._line_open:
            self.stdout.write("")
            self._line_open = False


def human_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
