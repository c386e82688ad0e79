"""Presentation shared by dbops commands: progress on a TTY only, JSON output, lists cut at a limit."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from tqdm import tqdm


def console_handlers() -> list[logging.StreamHandler]:
    """The root logger's handlers that write to the terminal streams (not files, not test captures)."""
    terminals = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    return [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and handler.stream in terminals
    ]


@contextmanager
def logs_above_bars() -> Iterator[None]:
    """Console log records written with the bars cleared first and drawn again after (tqdm's
    external_write_mode), by the console handlers themselves: unlike tqdm's logging_redirect_tqdm, which
    swaps them for a handler of its own, their level, filters (secret masking) and format all stay."""
    consoles = [handler for handler in console_handlers() if "emit" not in vars(handler)]
    for handler in consoles:
        console_emit = handler.emit

        def emit(record, console_emit=console_emit, stream=handler.stream):
            with tqdm.external_write_mode(file=stream):
                console_emit(record)

        handler.emit = emit
    try:
        yield
    finally:
        for handler in consoles:
            del handler.emit


class _TtyBar:
    """A tqdm bar on the command's stdout, only when it is a TTY and not --quiet; a context manager that
    closes the bar however the work ends. While it is open, log records on the console are written
    above the bar (logs_above_bars), so progress and log lines never overwrite each other."""

    unit, unit_scale = "it", False

    def __init__(self, stdout, *, quiet: bool = False, label: str = "", total: int | None = None) -> None:
        self.stdout = stdout
        stream = getattr(stdout, "_out", stdout)  # Django's OutputWrapper keeps the real stream in _out
        self.enabled = not quiet and hasattr(stream, "isatty") and stream.isatty()
        self.label, self.total, self._stream = label, total, stream
        self._bar: tqdm | None = None
        self._redirect = None

    def _open(self, label: str, total: int | None) -> tqdm:
        if self._bar is not None and (self._bar.desc != label or self._bar.total != total):
            self.close()  # a new phase (another label or total): a line of its own
        if self._bar is None:
            self._redirect = logs_above_bars()
            self._redirect.__enter__()
            self._bar = tqdm(
                desc=label, total=total, file=self._stream, unit=self.unit, unit_scale=self.unit_scale,
                unit_divisor=1024, leave=True, mininterval=0.2,
                # a terminal that reports no size (a bare pty) gets 80x24: tqdm would draw nothing at 0 rows
                ncols=shutil.get_terminal_size().columns, nrows=shutil.get_terminal_size().lines,
            )  # fmt: skip
        return self._bar

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class TtyProgress(_TtyBar):
    """`label: 42%|████      | 4,200/10,000 [00:03<00:04, …]`: percent and ETA, the total being known."""

    def __call__(self, label: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        bar = self._open(label, total)
        bar.update(done - bar.n)
        if done >= total:
            self.close()


class TtyByteProgress(_TtyBar):
    """Bytes read so far, with percent and ETA against `total` when the size is known (a restore decodes an
    artifact of known size), else the bytes and the rate."""

    unit, unit_scale = "B", True

    def __call__(self, read: int, written: int) -> None:
        if not self.enabled:
            return
        bar = self._open(self.label, self.total)
        bar.update(read - bar.n)
        bar.set_postfix_str(f"{human_bytes(written)} written", refresh=False)

    def stage(self, label: str) -> Callable[[int, int], None]:
        """The callback of a later stage whose size is known, (done, total) bytes, e.g. the upload to S3:
        a bar of its own on the next line, with percent and ETA."""

        def update(done: int, total: int) -> None:
            if self.enabled:
                bar = self._open(label, total)
                bar.update(done - bar.n)

        return update


def write_json(stdout, payload: Any) -> None:
    """One JSON document on stdout (logs go to stderr, so this stays machine-readable)."""
    stdout.write(json.dumps(payload, indent=2, sort_keys=False, default=str))


def human_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@dataclass
class Page:
    """The first `limit` items of a list (all of them for limit 0) and how many the whole list has."""

    items: list
    total: int
    limit: int

    @property
    def more(self) -> int:
        return self.total - len(self.items)


def page_of(items: QuerySet | list, *, limit: int) -> Page:
    """A queryset is counted and cut in the database; a list in memory."""
    total = items.count() if isinstance(items, QuerySet) else len(items)
    return Page(items=list(items[:limit] if limit else items), total=total, limit=limit)


def page_json(page: Page, key: str, items: list) -> dict[str, Any]:
    """{"total": …, "limit": …, key: items}: a script sees that a list was cut, and by how much."""
    return {"total": page.total, "limit": page.limit, key: items}


def cut_lists(data: dict[str, Any], keys: tuple[str, ...], *, limit: int) -> dict[str, Any]:
    """A JSON document with each list `data[key]` cut at `limit`, and its full length beside it as `<key>_total`."""
    for key in keys:
        page = page_of(data[key], limit=limit)
        data[key], data[f"{key}_total"] = page.items, page.total
    return data


def write_more(stream, page: Page, what: str, *, indent: str = "") -> None:
    """`… and 12 more records (--limit 0 lists all).` when the page left some out."""
    if page.more:
        stream.write(f"{indent}… and {page.more:,} more {what} (--limit 0 lists all).")


def migration_run_json(result, *, entity_counts: tuple[str, ...], **fields: Any) -> dict[str, Any]:
    """An export or import run as JSON: format, path, the counts of each entity, time and run row;
    `fields` adds (or replaces) what only one of them has."""
    return {
        "format": result.format,
        "path": result.path,
        "dry_run": result.dry_run,
        **fields,
        "entities": {item.entity: {name: getattr(item, name) for name in entity_counts} for item in result.entities},
        "seconds": round(result.seconds, 3),
        "run_id": result.run_id,
    }


def rows_per_second(rows: int, seconds: float) -> float:
    return rows / seconds if seconds else 0.0
