"""SQLite through the online backup API: a consistent copy while the database is in use, and a
restore that replaces the live file's pages in one step (all or nothing). Also SQLite's side of the
data services: checksums for snapshots, statistics from its catalog (and dbstat where compiled in)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from dbops.artifacts.workdir import work_folder
from dbops.engines.base import Connector, DatabaseFacts, DumpResult, IndexStats, RestoreOutcome, TableStats
from dbops.exceptions import BackupError, BackupLockedError, RestoreError

CHUNK_SIZE = 1 << 20


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _script_run(db: sqlite3.Connection, script: Path) -> None:
    """Runs an SQL script one statement at a time as it is read (memory bounded by the longest
    statement, not the file); its own BEGIN/COMMIT govern (autocommit connection). A script cut off
    mid-statement fails, and one cut off before its COMMIT leaves its transaction rolled back."""
    statement = ""
    with script.open(encoding="utf-8") as lines:
        for line in lines:
            statement += line
            if sqlite3.complete_statement(statement):
                db.execute(statement)
                statement = ""
    if statement.strip():
        raise sqlite3.OperationalError(f"the script ends inside a statement ({statement.strip()[:60]!r}…)")
    if db.in_transaction:
        db.execute("ROLLBACK")
        raise sqlite3.OperationalError("the script ends before its COMMIT (truncated?)")


def _counts(db: sqlite3.Connection) -> dict[str, int]:
    names = [
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return {name: db.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[0] for name in names}  # noqa: S608


class SQLiteConnector(Connector):
    engine = "sqlite"
    formats = ("sqlite", "plain")
    default_format = "sqlite"
    artifact_extensions = {"sqlite": ".sqlite3", "plain": ".sql"}

    @property
    def path(self) -> Path:
        return Path(self.settings_dict["NAME"])

    def _open(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise BackupError(f"SQLite database {self.path} does not exist.")
        return sqlite3.connect(self.path)

    def server_version(self) -> str:
        return sqlite3.sqlite_version

    def tool_version(self) -> str:
        return f"sqlite3 {sqlite3.sqlite_version} (Python online backup API)"

    def table_counts(self) -> dict[str, int]:
        with closing(self._open()) as db:
            return _counts(db)

    def migration_state(self) -> dict[str, list[str]]:
        with closing(self._open()) as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'django_migrations'").fetchone():
                return {}
            state: dict[str, list[str]] = {}
            for app, name in db.execute("SELECT app, name FROM django_migrations ORDER BY app, name"):
                state.setdefault(app, []).append(name)
            return state

    def archive_tables(self, dump_path: Path, *, fmt: str) -> list[str]:
        if fmt != "sqlite":
            return []
        with closing(sqlite3.connect(f"file:{dump_path}?mode=ro", uri=True)) as db:
            return list(_counts(db))

    def dump(self, stream: BinaryIO, *, fmt: str, jobs: int = 1, spool: Path | None = None) -> DumpResult:
        if fmt not in self.formats:
            raise BackupError(f"SQLite backups are sqlite (a database file) or plain SQL, not {fmt!r}.")
        with work_folder(purpose="sqlite") as folder:
            copy_path = folder / "copy.sqlite3"
            with closing(self._open()) as live, closing(sqlite3.connect(copy_path)) as copy:
                live.backup(copy)  # online backup API: consistent even while others write
                row_counts = _counts(copy)
                if fmt == "plain":
                    for line in copy.iterdump():
                        stream.write(line.encode() + b"\n")
            if fmt == "sqlite":
                with open(copy_path, "rb") as handle:
                    while chunk := handle.read(CHUNK_SIZE):
                        stream.write(chunk)
        return DumpResult(row_counts=row_counts, tool_version=self.tool_version())

    @contextmanager
    def _as_database_file(self, dump_path: Path, fmt: str) -> Iterator[Path]:
        if fmt == "sqlite":
            with closing(sqlite3.connect(f"file:{dump_path}?mode=ro", uri=True)) as db:
                try:
                    ok = db.execute("PRAGMA quick_check").fetchone()[0]
                except sqlite3.DatabaseError as exc:
                    raise RestoreError(f"Not a usable SQLite database: {exc}") from exc
                if ok != "ok":
                    raise RestoreError(f"The SQLite backup is damaged: {ok}")
            yield dump_path
        elif fmt == "plain":
            with work_folder(purpose="sqlite") as folder:
                built = folder / "restored.sqlite3"
                with closing(sqlite3.connect(built, isolation_level=None)) as db:
                    try:
                        _script_run(db, dump_path)
                    except (sqlite3.Error, UnicodeDecodeError) as exc:
                        raise RestoreError(
                            f"The SQL script failed: {exc}. Nothing was restored: the database is as it was."
                        ) from exc
                yield built
        else:
            raise RestoreError(f"An SQLite database cannot be restored from a {fmt!r} backup.")

    def restore(self, dump_path: Path, *, fmt: str, tables: list[str] | None = None, jobs: int = 1) -> RestoreOutcome:
        with self._as_database_file(dump_path, fmt) as source_path:
            self.connection.close()
            with closing(sqlite3.connect(source_path)) as source, closing(self._open()) as live:
                if not tables:
                    source.backup(live)  # one step: the whole file or nothing
                    return RestoreOutcome(database_name=str(self.path))
                missing = [t for t in tables if t not in _counts(source) or t not in _counts(live)]
                if missing:
                    raise RestoreError(
                        f"Unknown table(s) (not in the backup or the database): {', '.join(missing)}",
                        parameter="tables",
                    )
                live.execute("ATTACH DATABASE ? AS restored", [str(source_path)])
                try:
                    with live:
                        for table in tables:
                            live.execute(f"DELETE FROM main.{_quote(table)}")  # noqa: S608
                            live.execute(f"INSERT INTO main.{_quote(table)} SELECT * FROM restored.{_quote(table)}")  # noqa: S608
                finally:
                    live.execute("DETACH DATABASE restored")
        return RestoreOutcome(database_name=str(self.path), tables=list(tables))

    @contextmanager
    def scratch_restore(self, dump_path: Path, *, fmt: str, jobs: int = 1) -> Iterator[_ScratchFile]:
        with self._as_database_file(dump_path, fmt) as source_path:
            yield _ScratchFile(source_path)

    @contextmanager
    def lock(self, *, wait: bool = False) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".dbops.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BackupLockedError(
                    f"Another backup or restore of {self.path.name} is running; try again when it has finished."
                ) from None
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @classmethod
    def probe(cls, settings_dict: Mapping[str, Any], *, timeout: float) -> str:
        """Opens the existing database file read-only and reads its catalog."""
        path = Path(settings_dict["NAME"])
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)) as db:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            return str(exc)
        return ""

    # -- data services ---------------------------------------------------------------------------------
    def table_checksum(self, table: str, order_by: str) -> str:
        connection = self.connection
        quote = connection.ops.quote_name
        digest = hashlib.sha256()
        with connection.cursor() as cursor:
            # Cast to text: the copy's declared types differ from the table's, and the driver converts by type.
            columns = [column.name for column in connection.introspection.get_table_description(cursor, table)]
            casts = ", ".join(f"CAST({quote(column)} AS TEXT)" for column in columns)
            cursor.execute(f"SELECT {casts} FROM {quote(table)} ORDER BY {quote(order_by)}")  # noqa: S608
            while rows := cursor.fetchmany(5_000):
                for row in rows:
                    digest.update(repr(row).encode() + b"\n")
        return digest.hexdigest()

    def database_stats(self, *, exact: bool) -> DatabaseFacts:
        """Sizes from dbstat when the library has it, estimates from sqlite_stat1, and always exact counts:
        SQLite has no row statistics until ANALYZE runs, so a count is the only number it can show (`exact`
        changes nothing here)."""
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            size = pages * cursor.fetchone()[0]
            cursor.execute(
                "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index') "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
            objects = cursor.fetchall()
            sizes = _sizes(cursor)
            estimates = _estimates(cursor)
            tables, indexes = [], []
            for kind, name, table_name in objects:
                if kind == "index":
                    cursor.execute(f"PRAGMA index_list({quote(table_name)})")
                    unique = any(row[1] == name and row[2] for row in cursor.fetchall())
                    indexes.append(IndexStats(table_name, name, None, (sizes or {}).get(name), unique))
                    continue
                table = TableStats(name, estimates.get(name), table_bytes=(sizes or {}).get(name))
                cursor.execute(f"SELECT count(*) FROM {quote(name)}")  # noqa: S608 - quoted catalog name
                table.rows_exact = cursor.fetchone()[0]
                tables.append(table)
        if sizes:
            for table in tables:
                table.index_bytes = sum(sizes.get(index.name) or 0 for index in indexes if index.table == table.name)
                table.total_bytes = (table.table_bytes or 0) + table.index_bytes
            tables.sort(key=lambda table: (-(table.total_bytes or 0), table.name))
        facts = DatabaseFacts(
            engine="sqlite",
            database=str(self.settings_dict["NAME"]),
            size_bytes=size,
            tables=tables,
            indexes=indexes,
            cache_hit_ratio=None,
            connections=None,
            max_connections=None,
            notes=["SQLite keeps no index usage, cache or connection statistics; rows are counted exactly."],
        )
        if sizes is None:
            facts.notes.append("This SQLite library has no dbstat table: per-table sizes are unknown.")
        return facts


def _sizes(cursor) -> dict[str, int] | None:
    """Bytes per table and index from the dbstat virtual table; None when the library lacks it."""
    try:
        cursor.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
    except Exception:  # noqa: BLE001 - dbstat is a compile-time option of the SQLite library
        return None
    return dict(cursor.fetchall())


def _estimates(cursor) -> dict[str, int]:
    """Row estimates that ANALYZE left in sqlite_stat1 (first number of each stat), if any."""
    cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
    if cursor.fetchone() is None:
        return {}
    cursor.execute(
        "SELECT tbl, max(CAST(substr(stat, 1, instr(stat || ' ', ' ') - 1) AS INTEGER)) FROM sqlite_stat1 GROUP BY tbl"
    )
    return dict(cursor.fetchall())


class _ScratchFile:
    def __init__(self, path: Path) -> None:
        self.database_name = str(path)
        self._path = path

    def table_counts(self) -> dict[str, int]:
        with closing(sqlite3.connect(f"file:{self._path}?mode=ro", uri=True)) as db:
            return _counts(db)
