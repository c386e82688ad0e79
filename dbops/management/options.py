"""The options several dbops commands share, declared once each: the same flag, default and help wherever
it appears. A command adds its own options beside them."""

from __future__ import annotations

import argparse
from typing import Any

from django.db import DEFAULT_DB_ALIAS

DEFAULT_LIMIT = 50
STORAGES = ("local", "s3")


def count(raw: str) -> int:
    """argparse type: a whole number, 0 or more."""
    value = int(raw)
    if value < 0:
        raise ValueError("negative")
    return value


count.__name__ = "count (a whole number, 0 or more)"  # argparse names the type in its error


def options_named(options: dict[str, Any], *names: str) -> dict[str, Any]:
    """The options of these names, to pass on as the service's keywords of the same names (an option's
    dest is its service keyword: that is also how a service's error finds the option to name)."""
    return {name: options[name] for name in names}


def add_backup_format_option(parser: argparse.ArgumentParser, *, default: str) -> None:
    parser.add_argument(
        "--format",
        dest="fmt",
        default=default,
        choices=["custom", "plain"],
        help=f"custom (PostgreSQL custom archive, restores in parallel; the database file on SQLite) or plain SQL "
        f"(default {default}).",
    )


def add_database_option(parser: argparse.ArgumentParser, *, what: str = "Database alias") -> None:
    parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help=f'{what} (default "default").')


def add_json_option(parser: argparse.ArgumentParser, *, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"Print {what} as JSON.")


def add_quiet_option(parser: argparse.ArgumentParser, *, shows: str = "only the result line") -> None:
    parser.add_argument("--quiet", action="store_true", help=f"No progress output: {shows}.")


def add_limit_option(parser: argparse.ArgumentParser, *, what: str, default: int = DEFAULT_LIMIT) -> None:
    parser.add_argument(
        "--limit",
        type=count,
        default=default,
        metavar="N",
        help=f"Show at most N {what} (default {default}; 0 for all); the rest are counted, not shown.",
    )


def add_wait_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", action="store_true", help="Wait for a running backup/restore of the database instead of refusing."
    )


def add_storage_option(parser: argparse.ArgumentParser, *, what: str) -> None:
    parser.add_argument("--storage", choices=STORAGES, help=f"{what} (default: PITR_STORAGE).")


def add_encrypt_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--encrypt",
        action="store_true",
        help="Encrypt (AES-256-GCM, streaming) with the newest key of BACKUP_ENCRYPTION_KEYS.",
    )


def add_transform_option(parser: argparse.ArgumentParser, *, names: list[str]) -> None:
    parser.add_argument(
        "--transform",
        dest="transforms",
        action="append",
        default=[],
        help=f"Transformation for each record (repeatable): {', '.join(names)}.",
    )
