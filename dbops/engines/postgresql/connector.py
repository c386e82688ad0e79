"""PostgreSQL through pg_dump / pg_restore / psql. The password reaches the tools only as PGPASSWORD in
the child environment; row counts come from the very snapshot pg_dump dumps (pg_export_snapshot). The
tools are started through tools.child_popen/child_run, so they die with a killed parent; the rename swap
of a full restore and the repair of interrupted ones are in swap.py."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from django.utils import timezone

from dbops.engines.base import Connector, DumpResult, LeftoversRecovery, RestoreOutcome
from dbops.engines.postgresql import directory, maintenance, swap, tools
from dbops.engines.postgresql.data import PostgreSQLData
from dbops.engines.postgresql.indexes import PostgreSQLIndexes, scratch_execute, scratch_explain
from dbops.engines.postgresql.introspection import PostgreSQLIntrospection
from dbops.engines.postgresql.maintenance import MAINTENANCE_DB
from dbops.exceptions import BackupError, BackupLockedError, RestoreError

CHUNK_SIZE = 1 << 20
PRE_RESTORE_SUFFIX = swap.PRE_RESTORE_INFIX + "{stamp}"  # stamp: %Y%m%d%H%M%S
FORMAT_ARGUMENTS = {
    "custom": ["--format=custom", "--compress=0"],  # compression is the pipeline's (zstd), not pg_dump's zlib
    "plain": ["--format=plain"],
    "directory": ["--format=directory", "--compress=0"],
}
_TABLE_DATA_LINE = re.compile(r"^\d+; \d+ \d+ TABLE DATA (\S+) (\S+) ")

TABLES_SQL = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
    ORDER BY 1, 2
"""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_key(schema: str, table: str) -> str:
    return table if schema == "public" else f"{schema}.{table}"


def _ident_name(base: str, suffix: str) -> str:
    """`<base><suffix>` cut to PostgreSQL's 63-byte identifier limit (keeping the suffix)."""
    return base[: 63 - len(suffix)] + suffix


class PostgreSQLConnector(PostgreSQLData, PostgreSQLIntrospection, PostgreSQLIndexes, Connector):
    engine = "postgresql"
    formats = ("custom", "plain", "directory")  # directory: pg_dump -Fd, packed into one tar (see directory.py)
    default_format = "custom"
    artifact_extensions = {"custom": ".dump", "plain": ".sql", "directory": ".dir.tar"}
    required_tools = {"backup": ("pg_dump", "pg_restore", "psql"), "pitr": ("pg_basebackup",)}
    lock_wait_timeout = "120s"  # pg_dump gives up (with a message) rather than hang behind a DDL lock

    # -- plumbing (dbops.engines.postgresql.tools and .maintenance do the work) ------------------------
    def _tool(self, name: str, error: type[Exception] = BackupError) -> str:
        return tools.tool_require(name, error=error)

    def _conn_args(self) -> list[str]:
        return tools.connection_arguments(self.settings_dict)

    def _env(self, program: str = "") -> dict[str, str]:
        return tools.child_environment(self.settings_dict, application_name=f"dbops {program}".strip())

    def _raw_connection(self, dbname: str | None = None, *, autocommit: bool = True):
        """A connection of the engine's own; to MAINTENANCE_DB it is the one maintenance connection."""
        if dbname == MAINTENANCE_DB and autocommit:
            return maintenance.maintenance_connect(self.settings_dict)
        return maintenance.connect(self.settings_dict, dbname=dbname or self.database_name, autocommit=autocommit)

    def _run(self, args: list[str], *, error: type[Exception], stdin=None, with_workers: bool = False) -> None:
        tools.tool_run(args, env=self._env(Path(args[0]).name), error=error, stdin=stdin, with_workers=with_workers)

    def missing_tools(self, purpose: str) -> list[str]:
        return [name for name in self.required_tools.get(purpose, ()) if tools.tool_path(name) is None]

    @classmethod
    def probe(cls, settings_dict: Mapping[str, Any], *, timeout: float) -> str:
        return maintenance.server_probe(settings_dict, timeout=timeout)

    # -- information --------------------------------------------------------------------------------
    def server_version(self) -> str:
        with self.connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return cursor.fetchone()[0]

    def tool_version(self) -> str:
        return tools.tool_version_read(tools.tool_version_start(tools.tool_path("pg_dump")))

    def table_counts(self) -> dict[str, int]:
        return self._counts_in(self.database_name)

    def _counts_in(self, dbname: str) -> dict[str, int]:
        raw = self._raw_connection(dbname)
        try:
            with raw.cursor() as cursor:
                return _count_tables(cursor)
        finally:
            raw.close()

    def archive_tables(self, dump_path: Path, *, fmt: str) -> list[str]:
        if fmt not in ("custom", "directory"):
            return []
        pg_restore = self._tool("pg_restore", RestoreError)
        with directory.archive_for_restore(dump_path, fmt=fmt) as archive:
            listing = tools.tool_output(
                [pg_restore, "--list", str(archive)], env=self._env("pg_restore"), error=RestoreError
            )
        tables = []
        for line in listing.splitlines():
            match = _TABLE_DATA_LINE.match(line)
            if match:
                tables.append(_table_key(match.group(1), match.group(2)))
        return tables

    # -- dump ---------------------------------------------------------------------------------------
    def preflight(self) -> None:
        self._tool("pg_dump")

    def dump(self, stream: BinaryIO, *, fmt: str, jobs: int = 1, spool: Path | None = None) -> DumpResult:
        if fmt not in self.formats:
            raise BackupError(f"PostgreSQL backups are custom, plain or directory, not {fmt!r}.")
        if jobs > 1 and fmt != "directory":
            raise BackupError("Only a directory-format dump runs in parallel.", parameter="jobs")
        pg_dump = self._tool("pg_dump")
        version = tools.tool_version_start(pg_dump)  # read after the dump: it runs meanwhile
        snapshot_connection = self._raw_connection(autocommit=False)
        try:
            snapshot_connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with snapshot_connection.cursor() as cursor:
                cursor.execute("SELECT pg_export_snapshot()")
                snapshot = cursor.fetchone()[0]
                args = [pg_dump, *self._conn_args(), "--dbname", self.database_name, "--no-password"]
                args += [f"--snapshot={snapshot}", f"--lock-wait-timeout={self.lock_wait_timeout}"]
                args += FORMAT_ARGUMENTS[fmt]
                # Rows are counted in the exported snapshot itself, so they describe exactly what is dumped,
                # and while pg_dump runs rather than after it (the counts read what the dump just cached).
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbops-count") as counter:
                    row_counts = counter.submit(_count_tables, cursor)
                    try:
                        if fmt == "directory":
                            directory.dump_packed(args, stream, jobs=jobs, spool=spool, env=self._env("pg_dump"))
                        else:
                            self._stream_from(args, stream)
                    except BaseException:
                        snapshot_connection.cancel()
                        raise
                    row_counts = row_counts.result()
        finally:
            snapshot_connection.rollback()
            snapshot_connection.close()
            tool_version = tools.tool_version_read(version)
        return DumpResult(row_counts=row_counts, tool_version=tool_version)

    def _stream_from(self, args: list[str], stream: BinaryIO) -> None:
        with tempfile.TemporaryFile() as stderr:
            try:
                process = tools.child_popen(
                    args, stdout=subprocess.PIPE, stderr=stderr, env=self._env(Path(args[0]).name)
                )
            except OSError as exc:
                raise BackupError(f"cannot run {Path(args[0]).name}: {exc.strerror or exc}") from exc
            _widen_pipe(process.stdout)
            try:
                while chunk := process.stdout.read(CHUNK_SIZE):
                    stream.write(chunk)
            except BaseException:
                process.kill()
                process.wait()
                raise
            finally:
                process.stdout.close()
            if process.wait() != 0:
                raise BackupError(tools.tool_failure(args[0], process.returncode, tools.stderr_text(stderr)))

    # -- restore ------------------------------------------------------------------------------------
    def _load(self, dump_path: Path, dbname: str, *, fmt: str, jobs: int) -> None:
        if fmt in ("custom", "directory"):
            with directory.archive_for_restore(dump_path, fmt=fmt) as archive:
                args = [self._tool("pg_restore", RestoreError), *self._conn_args(), "--dbname", dbname]
                args += ["--no-password", "--exit-on-error", "--no-owner", f"--jobs={max(1, jobs)}", str(archive)]
                self._run(args, error=RestoreError, with_workers=jobs > 1)
        elif fmt == "plain":
            args = [self._tool("psql", RestoreError), *self._conn_args(), "--dbname", dbname, "--no-password"]
            args += ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", str(dump_path)]
            self._run(args, error=RestoreError)
        else:
            raise RestoreError(f"A PostgreSQL database cannot be restored from a {fmt!r} backup.")

    def _create_database_like_or_fail(self, admin, new_name: str) -> None:
        try:
            maintenance.database_create_like(admin, new_name, like=self.database_name)
        except maintenance.Error as exc:
            raise RestoreError(f"Cannot create database {new_name} to restore into: {str(exc).strip()}") from exc

    def restore(self, dump_path: Path, *, fmt: str, tables: list[str] | None = None, jobs: int = 1) -> RestoreOutcome:
        if tables:
            return self._restore_tables(dump_path, fmt=fmt, tables=tables)
        stamp = timezone.now().strftime("%Y%m%d%H%M%S")
        target = self.database_name
        fresh = _ident_name(target, f"{swap.RESTORING_INFIX}{stamp}")
        previous = _ident_name(target, PRE_RESTORE_SUFFIX.format(stamp=stamp))
        admin = self._raw_connection(MAINTENANCE_DB)
        try:
            self._create_database_like_or_fail(admin, fresh)
        finally:
            admin.close()
        try:
            self._load(dump_path, fresh, fmt=fmt, jobs=jobs)
        except RestoreError as exc:
            dropped = swap.scratch_drop(self, fresh)
            raise RestoreError(f"{exc}\nDatabase {target} was left as it was; the partly restored {dropped}") from exc
        except BaseException:
            swap.scratch_drop(self, fresh)  # Ctrl-C and the like: clean up, then let it through
            raise
        self.connection.close()  # our own session would block the rename
        swap.databases_swap(self, target=target, fresh=fresh, previous=previous)
        return RestoreOutcome(database_name=target, previous_database=previous)

    def restore_leftovers_recover(self) -> LeftoversRecovery:
        return swap.restore_leftovers_recover([self])

    @classmethod
    def restore_leftovers_recover_all(cls, connectors: list[Connector]) -> LeftoversRecovery:
        return swap.restore_leftovers_recover_by_server(connectors)

    def _restore_tables(self, dump_path: Path, *, fmt: str, tables: list[str]) -> RestoreOutcome:
        if fmt not in ("custom", "directory"):
            raise RestoreError(
                "Restoring chosen tables needs a custom- or directory-format backup (pg_dump -Fc or -Fd).",
                parameter="tables",
            )
        in_archive = set(self.archive_tables(dump_path, fmt=fmt))
        in_database = set(self.table_counts())
        unknown = [t for t in tables if t not in in_archive or t not in in_database or "." in t]
        if unknown:
            raise RestoreError(
                f"Unknown table(s) (not in the backup or the database): {', '.join(unknown)}", parameter="tables"
            )
        quoted = [f"public.{quote_ident(t)}" for t in tables]
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: deleting and reloading inside one
        # transaction is checked at COMMIT, so a restore that breaks references rolls back entirely.
        preamble = "".join(f"DELETE FROM {q};\n" for q in quoted)  # noqa: S608 (quoted identifiers)
        postamble = "".join(
            f"SELECT setval(pg_get_serial_sequence('{q}', 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {q};\n"  # noqa: S608 (quoted identifiers of tables checked to exist)
            for q, t in zip(quoted, tables, strict=True)
            if self._has_serial_id(t)
        )
        with directory.archive_for_restore(dump_path, fmt=fmt) as archive:
            self._tables_load(archive, tables, preamble=preamble, postamble=postamble)
        return RestoreOutcome(database_name=self.database_name, tables=list(tables))

    def _tables_load(self, archive: Path, tables: list[str], *, preamble: str, postamble: str) -> None:
        pg_restore = [self._tool("pg_restore", RestoreError), "--data-only", "--file=-", str(archive)]
        for table in tables:
            pg_restore += ["--table", table]
        psql = [self._tool("psql", RestoreError), *self._conn_args(), "--dbname", self.database_name, "--no-password"]
        psql += ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"]
        with tempfile.TemporaryFile() as script:
            script.write(preamble.encode())
            script.flush()  # the child writes through the same file descriptor, after our bytes
            with tempfile.TemporaryFile() as stderr:
                result = tools.child_run(pg_restore, stdout=script, stderr=stderr, env=self._env("pg_restore"))
                if result.returncode != 0:
                    raise RestoreError(tools.tool_failure(pg_restore[0], result.returncode, tools.stderr_text(stderr)))
            script.seek(0, os.SEEK_END)
            script.write(postamble.encode())
            script.flush()
            script.seek(0)
            self._run(psql, error=RestoreError, stdin=script)

    def _has_serial_id(self, table: str) -> bool:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [f"public.{quote_ident(table)}"])
            return cursor.fetchone()[0] is not None

    @contextmanager
    def scratch_restore(self, dump_path: Path, *, fmt: str, jobs: int = 1) -> Iterator[_ScratchDatabase]:
        scratch = _ident_name(self.database_name, f"{swap.VERIFY_INFIX}{timezone.now():%Y%m%d%H%M%S}")
        admin = self._raw_connection(MAINTENANCE_DB)
        try:
            # Shared, so verifications run side by side; while it is held no repair drops their scratch databases.
            with admin.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock_shared(%s)", [self.lock_key(swap.VERIFY_LOCK_SCOPE)])
            self._create_database_like_or_fail(admin, scratch)
            try:
                self._load(dump_path, scratch, fmt=fmt, jobs=jobs)
                yield _ScratchDatabase(self, scratch)
            finally:
                swap.scratch_drop(self, scratch)  # on a new connection: this one may be the one that was cut
        finally:
            admin.close()

    def database_ensure(self) -> bool:
        with maintenance.maintenance_session(self.settings_dict) as admin:
            return maintenance.database_create_missing(admin, self.database_name)

    def drop_database(self, name: str, *, force: bool = False) -> None:
        """Drops one of this database's `<name>_pre_restore_<time>` copies (and nothing else); one still
        in use raises DatabaseOperationError unless `force` ends its sessions first."""
        if name not in self.pre_restore_databases():
            raise RestoreError(f"{name} is not a pre-restore copy of {self.database_name}; not dropping it.")
        maintenance.database_drop_or_fail(self.settings_dict, name, force=force)

    def pre_restore_databases(self) -> list[str]:
        """Databases kept by earlier full restores of this one, oldest first."""
        base = _ident_name(self.database_name, PRE_RESTORE_SUFFIX.format(stamp="0" * 14))[: -len("0" * 14)]
        pattern = "^" + re.escape(base) + r"[0-9]{14}$"
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname ~ %s ORDER BY datname", [pattern])
            return [row[0] for row in cursor.fetchall()]

    # -- lock ---------------------------------------------------------------------------------------
    def lock_key(self, scope: str = swap.RESTORE_LOCK_SCOPE) -> int:
        """The advisory lock key of this database for one scope (backups and restores, or verifications)."""
        return swap.lock_key(self.database_name, scope)

    @contextmanager
    def lock(self, *, wait: bool = False) -> Iterator[None]:
        # Held on the maintenance database so a restore's rename of the target does not end it.
        key = self.lock_key()
        holder = self._raw_connection(MAINTENANCE_DB)
        try:
            with holder.cursor() as cursor:
                if wait:
                    cursor.execute("SELECT pg_advisory_lock(%s)", [key])
                else:
                    cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
                    if not cursor.fetchone()[0]:
                        raise BackupLockedError(
                            f"Another backup or restore of database {self.database_name} is running; "
                            "try again when it has finished."
                        )
            yield
        finally:
            holder.close()  # closing the session releases the advisory lock


class _ScratchDatabase:
    """A restored throwaway database, for verification."""

    def __init__(self, connector: PostgreSQLConnector, name: str) -> None:
        self.connector, self.database_name = connector, name

    def table_counts(self) -> dict[str, int]:
        return self.connector._counts_in(self.database_name)

    @contextmanager
    def session(self) -> Iterator[_ScratchSession]:
        """One connection to the scratch database for a series of plans and DDL."""
        raw = self.connector._raw_connection(self.database_name, autocommit=False)
        try:
            yield _ScratchSession(raw)
        finally:
            raw.close()


class _ScratchSession:
    """Plans (EXPLAIN ANALYZE rolled back) and DDL on one connection to a scratch database."""

    def __init__(self, raw) -> None:
        self.raw = raw

    def explain(self, sql: str, *, analyze: bool, parameter_count: int, timeout_ms: int) -> list:
        return scratch_explain(self.raw, sql, analyze=analyze, parameter_count=parameter_count, timeout_ms=timeout_ms)

    def execute(self, statements: list[str]) -> None:
        scratch_execute(self.raw, statements)


def _count_tables(cursor) -> dict[str, int]:
    cursor.execute(TABLES_SQL)
    tables = cursor.fetchall()
    if not tables:
        return {}
    selects = [
        f"SELECT %s, count(*) FROM {quote_ident(schema)}.{quote_ident(table)}"  # noqa: S608 (catalog names, quoted)
        for schema, table in tables
    ]
    cursor.execute(" UNION ALL ".join(selects), [_table_key(s, t) for s, t in tables])
    return {name: count for name, count in cursor.fetchall()}


def _widen_pipe(pipe) -> None:
    """A 1 MiB pipe instead of 64 KiB: fewer wake-ups between pg_dump and us (Linux only)."""
    # Not Linux, or above /proc/sys/fs/pipe-max-size: the default pipe works, only slower.
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, CHUNK_SIZE)
