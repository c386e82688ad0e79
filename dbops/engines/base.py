"""One small interface per database engine. Services talk only to a Connector, never to pg_dump or
sqlite3 directly; `get_connector(alias)` picks the implementation from the alias's ENGINE."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.recorder import MigrationRecorder

from dbops.exceptions import ConfigurationError


@dataclass
class DumpResult:
    """What a dump reports besides its bytes: row counts taken in the dump's own snapshot."""

    row_counts: dict[str, int]
    tool_version: str = ""


@dataclass
class RestoreOutcome:
    """What a restore did, in engine terms (the service adds the catalog side)."""

    database_name: str
    previous_database: str = ""  # PostgreSQL full restore: the old database kept under this name
    tables: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class LeftoversRecovery:
    """What repairing after interrupted restores and verifications did, one line per thing."""

    done: list[str] = field(default_factory=list)  # repaired or removed
    failed: list[str] = field(default_factory=list)  # found, but could not be repaired or removed
    left_alone: list[str] = field(default_factory=list)  # belongs to a backup, restore or verification still running
    database_missing: bool = False  # the database itself is still missing afterwards

    def extend(self, other: LeftoversRecovery) -> None:
        self.done += other.done
        self.failed += other.failed
        self.left_alone += other.left_alone
        self.database_missing = self.database_missing or other.database_missing


class Connector(ABC):
    engine: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    default_format: ClassVar[str]

    def __init__(self, alias: str = DEFAULT_DB_ALIAS) -> None:
        self.alias = alias
        self.connection = connections[alias]
        self.settings_dict = self.connection.settings_dict

    @property
    def database_name(self) -> str:
        return str(self.settings_dict["NAME"])

    def preflight(self) -> None:
        """Raises BackupError if a dump cannot even start (tool missing), before any record is written."""
        return None  # nothing to check for engines that need no external tool

    @abstractmethod
    def dump(self, stream: BinaryIO, *, fmt: str) -> DumpResult:
        """Writes a consistent dump of the whole database to `stream` (anything with write(bytes))."""

    @abstractmethod
    def restore(self, dump_path: Path, *, fmt: str, tables: list[str] | None = None, jobs: int = 1) -> RestoreOutcome:
        """Replaces the database (or only `tables`) with the dump at `dump_path` (decoded, not compressed).

        Either the restore succeeds completely or the database is left as it was."""

    @abstractmethod
    def scratch_restore(self, dump_path: Path, *, fmt: str, jobs: int = 1) -> AbstractContextManager[Connector]:
        """Restores into a throwaway database; yields a Connector on it; drops it on exit."""

    @abstractmethod
    def table_counts(self) -> dict[str, int]:
        """Exact row count of every table of the database."""

    @abstractmethod
    def server_version(self) -> str: ...

    def tool_version(self) -> str:
        return ""

    @abstractmethod
    def lock(self, *, wait: bool = False) -> AbstractContextManager[None]:
        """Holds the one-backup-or-restore-at-a-time lock of this database; raises BackupLockedError."""

    def archive_tables(self, dump_path: Path, *, fmt: str) -> list[str]:
        """Tables present in a (decoded) dump, for --tables checks; empty when the format cannot say."""
        return []

    def database_ensure(self) -> bool:
        """Creates this alias's database when the server has none by that name; True if it did."""
        return False  # engines whose database is created on first connection (SQLite: a file)

    def pre_restore_databases(self) -> list[str]:
        """Databases kept aside by earlier full restores (PostgreSQL `<name>_pre_restore_<time>`)."""
        return []

    def restore_leftovers_recover(self) -> LeftoversRecovery:
        """Repairs what killed or cut-off restores and verifications of this database left behind (a
        half-done rename swap, scratch databases of dead runs); works while the database is missing."""
        return LeftoversRecovery()  # engines that restore in one step leave nothing behind

    @classmethod
    def restore_leftovers_recover_all(cls, connectors: list[Connector]) -> LeftoversRecovery:
        """restore_leftovers_recover for several databases of this engine (PostgreSQL: one query per server)."""
        found = LeftoversRecovery()
        for connector in connectors:
            found.extend(connector.restore_leftovers_recover())
        return found

    def drop_database(self, name: str) -> None:
        """Drops one of pre_restore_databases() (retention's clean-up)."""
        raise NotImplementedError(f"{self.engine} keeps no databases aside")

    def migration_state(self) -> dict[str, list[str]]:
        """Applied migrations per app, to warn when a backup comes from a different code version."""
        recorder = MigrationRecorder(self.connection)
        if not recorder.has_table():
            return {}
        state: dict[str, list[str]] = {}
        for app, name in sorted(recorder.applied_migrations()):
            state.setdefault(app, []).append(name)
        return state

    def close(self) -> None:
        self.connection.close()


CONNECTOR_MAPPING: dict[str, str] = {
    "django.db.backends.postgresql": "dbops.engines.postgresql.PostgreSQLConnector",
    "django.db.backends.sqlite3": "dbops.engines.sqlite.SQLiteConnector",
}


def get_connector(alias: str = DEFAULT_DB_ALIAS) -> Connector:
    from django.utils.module_loading import import_string

    if alias not in connections.settings:
        raise ConfigurationError(f"Unknown database alias {alias!r}; configured: {', '.join(connections.settings)}.")
    engine = connections.settings[alias]["ENGINE"]
    path = CONNECTOR_MAPPING.get(engine)
    if path is None:
        raise ConfigurationError(f"No backup connector for database engine {engine!r} (alias {alias!r}).")
    return import_string(path)(alias)


def iter_chunks(source: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := source.read(size):
        yield chunk
