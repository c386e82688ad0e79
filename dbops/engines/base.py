"""One small interface per database engine. Services talk only to a Connector, never to an engine's
programs, driver or catalog directly; `get_connector(alias)` picks the implementation from the alias's
ENGINE. Besides dump/restore, a connector carries what services need to stay engine-neutral: bulk
loading (COPY text where the engine has it), table locks, the snapshot copy tables and checksums,
sequences, statistics, query plans, and a probe of a database that Django settings do not describe."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.recorder import MigrationRecorder

from dbops.engines.per_key import rows_per_key_window
from dbops.exceptions import ConfigurationError, FeatureUnavailable

# Table lock modes of lock_tables(): "read" lets others read but nobody write; "write" keeps other
# writers out (reads go on); "exclusive" keeps everyone out.
LOCK_MODES = ("read", "write", "exclusive")


ROW_BATCH = 5_000  # rows per round trip when a table is copied row by row


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


@dataclass
class TableStats:
    name: str
    rows_estimated: int | None
    rows_exact: int | None = None
    table_bytes: int | None = None
    index_bytes: int | None = None
    total_bytes: int | None = None


@dataclass
class IndexStats:
    table: str
    name: str
    scans: int | None
    size_bytes: int | None
    unique: bool

    @property
    def unused(self) -> bool:
        # Unique and primary-key indexes enforce constraints, so zero scans does not make them removable.
        return self.scans == 0 and not self.unique


@dataclass
class DatabaseFacts:
    """What an engine can say about a database's size and use (None: this engine does not know)."""

    engine: str
    database: str
    size_bytes: int | None
    tables: list[TableStats]
    indexes: list[IndexStats]
    cache_hit_ratio: float | None
    connections: int | None
    max_connections: int | None
    notes: list[str] = field(default_factory=list)  # what this engine cannot tell, said once


@dataclass(frozen=True)
class TableFacts:
    """A table as the query analyzer needs it: estimated rows, its columns, those with few distinct values."""

    rows: int
    columns: frozenset[str]
    few_values: frozenset[str] = frozenset()


@dataclass(frozen=True)
class IndexFacts:
    """An existing index: its key (columns or expressions, " DESC" when descending), use and size."""

    table: str
    name: str
    definition: str  # CREATE INDEX ... as the server prints it
    method: str  # btree, gin, ...
    keys: tuple[str, ...]
    include: tuple[str, ...]
    predicate: str  # "" for a full index
    unique: bool  # unique or primary key: it enforces a constraint
    valid: bool
    size_bytes: int
    scans: int  # times the planner used it since the statistics were reset


@dataclass
class HypotheticalPlan:
    """A plan made as if one more index existed, the name the planner knows it by, and its estimated size."""

    raw_plan: list[dict[str, Any]]
    index_name: str
    size_bytes: int


class NoIndexSuspension:
    """Engines that keep no indexes worth rebuilding after a bulk load: suspend and restore do nothing."""

    rebuilt_tables: list[str] = []

    def tables_worth_rebuilding(self, rows_per_model: dict) -> list[str]:
        return []

    def suspend(self, rows_per_model: dict) -> None:
        return None

    def restore(self) -> None:
        return None


class Connector(ABC):
    engine: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    default_format: ClassVar[str]
    artifact_extensions: ClassVar[dict[str, str]]  # backup format -> file name extension
    # Programs a purpose needs ("backup": dump and restore, "pitr": base backups), for the system checks.
    required_tools: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Bulk loads as COPY text lines (copy_text, copy_escapes, copy_into, copy_json_lines); else executemany.
    supports_copy: ClassVar[bool] = False
    copy_escapes: ClassVar[Mapping[int, str] | None] = None  # str.translate table of the COPY text format
    # import_data's set-based path: raw JSON records checked and converted in SQL (json_staging).
    supports_json_staging: ClassVar[bool] = False
    # Anonymized exports apply the masking rules in SQL (sql_masking) and the server renders the rows.
    supports_sql_masking: ClassVar[bool] = False
    # Query plans for the analyzer (explain, table_facts) and statement statistics.
    supports_plans: ClassVar[bool] = False
    # Plans with indexes that are never built (explain_hypothetical), for proven index advice.
    supports_hypothetical_indexes: ClassVar[bool] = False
    # CREATE INDEX CONCURRENTLY (Django's AddIndexConcurrently) for advised indexes' migrations.
    supports_concurrent_indexes: ClassVar[bool] = False

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
    def dump(self, stream: BinaryIO, *, fmt: str, jobs: int = 1, spool: Path | None = None) -> DumpResult:
        """Writes a consistent dump of the whole database to `stream` (anything with write(bytes)); `jobs` > 1
        dumps in parallel where the format allows it, spooling the parts under the folder `spool`."""

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

    def drop_database(self, name: str, *, force: bool = False) -> None:
        """Drops one of pre_restore_databases() (retention's clean-up); `force` ends sessions on it first."""
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

    # -- tools -------------------------------------------------------------------------------------
    def missing_tools(self, purpose: str) -> list[str]:
        """The programs `purpose` needs that cannot be found (system checks)."""
        return []

    # -- bulk loading --------------------------------------------------------------------------------
    def copy_text(self, value: Any) -> str:
        """One value in the COPY text format (supports_copy engines only)."""
        raise FeatureUnavailable(f"{self.engine} has no COPY")

    def copy_into(self, table: str, columns: list[str], text: str) -> None:
        """Loads COPY text lines into `table` (quoted identifiers); BulkLoadRejected names the bad line."""
        raise FeatureUnavailable(f"{self.engine} has no COPY")

    def copy_json_lines(self, sql: str, params: Any, aliases: list[str], prefix: str) -> Callable[[Any], int]:
        """A function writing the query's rows to a file as `prefix + row JSON + "}"` lines; returns rows."""
        raise FeatureUnavailable(f"{self.engine} has no COPY")

    def sql_masking(self, *, key: bytes, vocabulary: Any) -> Any:
        """The SQL of the masking rules for this key and fake vocabulary (supports_sql_masking engines):
        `.column(ref, rule=, field_type=, person=)` (None where the server cannot apply the rule) and
        `.person_digest(key_refs, fallback_sql)`."""
        raise FeatureUnavailable(f"{self.engine} cannot mask in SQL")

    def sql_masking_end(self) -> None:  # noqa: B027 - engines without sql_masking have nothing to forget
        """Forgets the key sql_masking gave the session (safe to call when it gave none)."""

    def table_schema(self, table: str) -> str | None:
        """The schema (namespace) the table is in, for a schema-qualified name in a file; None where the
        engine has none."""
        return None

    def json_too_deep(self, queryset: Any, attname: str) -> Any:
        """The primary key of the first row of `queryset` whose JSON field `attname` nests deeper than Python's
        parser reads safely (checked on the server, before Python tries: a RecursionError caught deep in C
        leaves CPython 3.11's recursion bookkeeping off for the rest of the process); None where the engine
        cannot tell."""
        return None

    def json_staging(self, table: str, fields: list, defaults: dict[str, Any], copier: Any) -> Any:
        """The statements of the raw JSON table of an import into `table`, for these JsonFields
        (supports_json_staging); its COPYs go through `copier` (json_copier)."""
        raise FeatureUnavailable(f"{self.engine} has no set-based import path")

    def json_copier(self) -> Any:
        """A context manager whose put(statement, lines) COPYs from a second thread on this connection and
        whose wait() returns once all are done (or raises the first failure)."""
        raise FeatureUnavailable(f"{self.engine} has no set-based import path")

    def rows_per_key(self, queryset: Any, *, key_field: str, keys: Sequence[Any], limit: int) -> Iterable[Any]:
        """At most `limit` rows of `queryset`, in its order, for each key of `key_field`, in one statement run
        when iterated; each row carries its key as `.dbops_key` (dbops.engines.per_key)."""
        return rows_per_key_window(queryset, key_field=key_field, keys=keys, limit=limit)

    def index_suspension(self) -> NoIndexSuspension:
        """suspend() drops indexes of tables about to grow a lot, restore() rebuilds them (same transaction)."""
        return NoIndexSuspension()

    def import_lock(self) -> bool:
        """Takes this database's import lock for the current transaction; False when another transaction
        holds it (an import or a rollback: two of them would deadlock on each other's table locks)."""
        return True

    def lock_tables(self, tables: list[str], *, mode: str) -> None:
        """Locks the tables until the end of the current transaction (mode in LOCK_MODES).

        Engines whose write transaction already locks the whole database do nothing."""
        if mode not in LOCK_MODES:
            raise ValueError(f"lock mode {mode!r} is not one of {LOCK_MODES}")

    def constraints_check(self) -> None:
        """Checks deferred constraints now (IntegrityError here rather than at commit), where the engine can."""
        return None

    def consistent_read_begin(self) -> None:
        """Makes the transaction just begun read one unchanging picture of the database, read-only."""
        return None

    def consistent_read_share(self) -> str | None:
        """An id by which another connection reads the same picture as this consistent-read transaction
        (consistent_read_join), or None where the engine cannot share one."""
        return None

    def consistent_read_join(self, shared: str) -> None:
        """Makes the transaction just begun on this connection read the picture `shared` names, read-only."""
        raise NotImplementedError(f"{self.engine} cannot share a consistent read")

    # -- snapshot copies ---------------------------------------------------------------------------------
    def table_copy_create(self, table: str, copy: str) -> int:
        """Creates `copy` holding every row of `table`; returns the row count."""
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {quote(copy)} AS SELECT * FROM {quote(table)}")  # noqa: S608 - quoted
            cursor.execute(f"SELECT COUNT(*) FROM {quote(copy)}")  # noqa: S608 - quoted identifier
            return cursor.fetchone()[0]

    def tables_refill(self, copies: dict[str, str]) -> None:
        """Replaces each table's rows with its copy's; `copies` in dependency order (parents first)."""
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            for table in reversed(list(copies)):  # children first
                cursor.execute(f"DELETE FROM {quote(table)}")  # noqa: S608 - quoted identifier
            for table, copy in copies.items():
                cursor.execute(f"INSERT INTO {quote(table)} SELECT * FROM {quote(copy)}")  # noqa: S608 - quoted

    def same_database(self, other: Connector) -> bool:
        """Whether `other` reaches the very database this connector does (one server, one name)."""
        keys = ("ENGINE", "HOST", "PORT", "NAME")
        return all(str(self.settings_dict.get(k) or "") == str(other.settings_dict.get(k) or "") for k in keys)

    def table_copy_to(self, table: str, target: Connector, copy: str) -> int:
        """Creates `copy` in `target`'s database holding every row of `table` of this one, with the same
        columns and types; returns the row count. Runs inside the callers' transactions on both."""
        if self.same_database(target):
            return self.table_copy_create(table, copy)
        if type(target) is not type(self):
            raise FeatureUnavailable(f"Copying a {self.engine} table into a {target.engine} database is not supported.")
        columns = self.table_columns(table)
        target.table_create(copy, columns)
        return target.rows_insert(copy, [name for name, _ in columns], self.rows_read(table, [n for n, _ in columns]))

    def tables_refill_from(self, copies: dict[str, str], source: Connector) -> None:
        """Like tables_refill, with the copies in `source`'s database; `copies` in dependency order."""
        if self.same_database(source):
            return self.tables_refill(copies)
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            for table in reversed(list(copies)):  # children first
                cursor.execute(f"DELETE FROM {quote(table)}")  # noqa: S608 - quoted identifier
        for table, copy in copies.items():
            names = [name for name, _ in source.table_columns(copy)]
            self.rows_insert(table, names, source.rows_read(copy, names))
        return None

    def table_columns(self, table: str) -> list[tuple[str, str]]:
        """(column, declared type) of `table`, in table order."""
        with self.connection.cursor() as cursor:
            description = self.connection.introspection.get_table_description(cursor, table)
        return [(column.name, column.type_code or "") for column in description]

    def table_create(self, name: str, columns: list[tuple[str, str]]) -> None:
        quote = self.connection.ops.quote_name
        definition = ", ".join(f"{quote(column)} {kind}".rstrip() for column, kind in columns)
        with self.connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {quote(name)} ({definition})")

    def rows_read(self, table: str, columns: list[str]) -> Iterator[list[tuple]]:
        """Every row of `table` (those columns, in order), in batches: memory stays bounded."""
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(map(quote, columns))} FROM {quote(table)}")  # noqa: S608 - quoted
            while batch := cursor.fetchmany(ROW_BATCH):
                yield batch

    def rows_insert(self, table: str, columns: list[str], batches: Iterator[list[tuple]]) -> int:
        quote = self.connection.ops.quote_name
        marks = ", ".join(["%s"] * len(columns))
        statement = f"INSERT INTO {quote(table)} ({', '.join(map(quote, columns))}) VALUES ({marks})"  # noqa: S608
        count = 0
        with self.connection.cursor() as cursor:
            for batch in batches:
                cursor.executemany(statement, batch)
                count += len(batch)
        return count

    def table_exists(self, name: str) -> bool:
        with self.connection.cursor() as cursor:
            return name in self.connection.introspection.table_names(cursor)

    def table_drop(self, name: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.connection.ops.quote_name(name)}")

    @abstractmethod
    def table_checksum(self, table: str, order_by: str) -> str:
        """sha256 of the table's rows in `order_by` order, independent of physical row order."""

    def tables_size_bytes(self, tables: list[str]) -> int:
        """Bytes on disk of the tables with their indexes (0 when the engine cannot tell)."""
        return 0

    def sequence_positions(self, tables: list[tuple[str, str]]) -> dict[str, list]:
        """table -> [sequence, last_value, is_called] for each (table, key column) with a sequence."""
        return {}

    def sequence_positions_restore(self, positions: dict[str, list]) -> None:
        """Puts sequences exactly where sequence_positions() found them."""
        return None

    # -- statistics and plans ------------------------------------------------------------------------------
    @abstractmethod
    def database_stats(self, *, exact: bool) -> DatabaseFacts:
        """Sizes, row estimates (exact counts with `exact`), index use, cache and connections."""

    def explain(
        self, sql: str, *, analyze: bool, parameter_count: int, timeout_ms: int, verbose: bool = False
    ) -> list[dict[str, Any]]:
        """The plan of one statement as JSON (PostgreSQL's EXPLAIN format); ANALYZE runs are rolled back."""
        raise FeatureUnavailable(f"query plans need PostgreSQL; database {self.alias!r} is {self.engine}.")

    def index_catalog(self, *, tables: list[str] | None = None) -> list[IndexFacts]:
        """Every index of the user's tables (of `tables` only when given), with size and use."""
        raise FeatureUnavailable(f"index statistics need PostgreSQL; database {self.alias!r} is {self.engine}.")

    def statistics_since(self) -> Any:
        """When the index use counters started counting (None: unknown)."""
        return None

    def hypothetical_indexes_ensure(self) -> None:
        """Makes hypothetical indexes usable, or raises FeatureUnavailable saying why they are not."""
        raise FeatureUnavailable(f"hypothetical indexes need PostgreSQL; database {self.alias!r} is {self.engine}.")

    def explain_hypothetical(
        self, sql: str, *, index_sql: str, parameter_count: int, timeout_ms: int
    ) -> HypotheticalPlan:
        """The plan of `sql` as if the index `index_sql` (a CREATE INDEX statement) existed."""
        raise FeatureUnavailable(f"hypothetical indexes need PostgreSQL; database {self.alias!r} is {self.engine}.")

    def table_facts(self, relation: str) -> TableFacts | None:
        raise FeatureUnavailable(f"query plans need PostgreSQL; database {self.alias!r} is {self.engine}.")

    def statement_statistics_top(self, *, limit: int | None, queryid: str | None = None) -> list[tuple]:
        """The slowest statements the server recorded (limit None: all): (queryid, sql, calls, mean_ms, total_ms)."""
        raise FeatureUnavailable(f"not a PostgreSQL database ({self.engine})")

    # -- a database Django settings do not describe ----------------------------------------------------
    @classmethod
    @abstractmethod
    def probe(cls, settings_dict: Mapping[str, Any], *, timeout: float) -> str:
        """Opens the database a DATABASES-like entry describes, once; '' when that works, else why not."""


CONNECTOR_MAPPING: dict[str, str] = {
    "django.db.backends.postgresql": "dbops.engines.postgresql.PostgreSQLConnector",
    "django.db.backends.sqlite3": "dbops.engines.sqlite.SQLiteConnector",
}
ENGINE_NAMES: dict[str, str] = {"postgresql": "django.db.backends.postgresql", "sqlite": "django.db.backends.sqlite3"}


def get_connector(alias: str = DEFAULT_DB_ALIAS) -> Connector:
    from django.utils.module_loading import import_string

    if alias not in connections.settings:
        raise ConfigurationError(f"Unknown database alias {alias!r}; configured: {', '.join(connections.settings)}.")
    engine = connections.settings[alias]["ENGINE"]
    path = CONNECTOR_MAPPING.get(engine)
    if path is None:
        raise ConfigurationError(f"No backup connector for database engine {engine!r} (alias {alias!r}).")
    return import_string(path)(alias)


def database_probe(*, engine: str, settings_dict: Mapping[str, Any], timeout: float) -> str:
    """Opens a database described by settings alone (no alias needed), once: '' or the reason it failed.

    `engine` is a connector's engine name ("postgresql", "sqlite"); works without Django settings."""
    from django.utils.module_loading import import_string

    if engine not in ENGINE_NAMES:
        raise ConfigurationError(f"No backup connector for database engine {engine!r}.")
    connector_class = import_string(CONNECTOR_MAPPING[ENGINE_NAMES[engine]])
    return connector_class.probe(settings_dict, timeout=timeout)


def iter_chunks(source: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := source.read(size):
        yield chunk
