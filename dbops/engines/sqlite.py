"""SQLite through the online backup API: a consistent copy while the database is in use, and a
restore that replaces the live file's pages in one step (all or nothing)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import BinaryIO

from dbops.artifacts.workdir import work_folder
from dbops.engines.base import Connector, DumpResult, RestoreOutcome
from dbops.exceptions import BackupError, BackupLockedError, RestoreError

CHUNK_SIZE = 1 << 20


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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

    def dump(self, stream: BinaryIO, *, fmt: str) -> DumpResult:
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
                with closing(sqlite3.connect(built)) as db:
                    try:
                        db.executescript(dump_path.read_text())
                    except sqlite3.Error as exc:
                        raise RestoreError(f"The SQL script failed: {exc}") from exc
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
                    raise RestoreError(f"Unknown table(s) for --tables: {', '.join(missing)}")
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


class _ScratchFile:
    def __init__(self, path: Path) -> None:
        self.database_name = str(path)
        self._path = path

    def table_counts(self) -> dict[str, int]:
        with closing(sqlite3.connect(f"file:{self._path}?mode=ro", uri=True)) as db:
            return _counts(db)
