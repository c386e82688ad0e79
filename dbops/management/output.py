"""Presentation shared by dbops commands: progress on a TTY only, JSON output, lists cut at a limit."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet


class _TtyLine:
    """One status line rewritten in place, only when stdout is a TTY and not --quiet; a context manager
    that ends the line however the work ends."""

    def __init__(self, stdout, *, quiet: bool = False) -> None:
        self.stdout = stdout
        stream = getattr(stdout, "_out", stdout)  # Django's OutputWrapper keeps the real stream in _out
        self.enabled = not quiet and hasattr(stream, "isatty") and stream.isatty()
        self._line_open = False

    def _show(self, text: str) -> None:
        self.stdout.write(f"\r{text}", ending="")
        self.stdout.flush()
        self._line_open = True

    def close(self) -> None:
        if self.enabled and self._line_open:
            self.stdout.write("")
            self._line_open = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class TtyProgress(_TtyLine):
    """`label: done/total (percent)`."""

    def __call__(self, label: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        percent = 100 * done // total if total else 100
        self._show(f"{label}: {done:,}/{total:,} ({percent}%)")
        if done >= total:
            self.close()


class TtyByteProgress(_TtyLine):
    """`label: <read> read, <written> written, <rate>/s`."""

    def __init__(self, stdout, *, label: str, quiet: bool = False) -> None:
        super().__init__(stdout, quiet=quiet)
        self.label = label
        self._started = time.monotonic()

    def __call__(self, read: int, written: int) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self._show(
            f"{self.label}: {human_bytes(read)} read, {human_bytes(written)} written, "
            f"{human_bytes(int(read / elapsed))}/s   "
        )


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
