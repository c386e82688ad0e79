"""PostgreSQL's side of the data services: bulk loading through COPY, table locks, the snapshot checksum
streamed through COPY, sequences, and the consistent read of an export. Mixed into PostgreSQLConnector;
everything runs on the alias's Django connection, inside the caller's transaction."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import DatabaseError
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL

from dbops.engines.per_key import KEY_ATTRIBUTE
from dbops.engines.postgresql import masking_sql
from dbops.engines.postgresql.bulk_indexes import IndexSuspension
from dbops.engines.postgresql.copy_format import COPY_ESCAPES, copy_text
from dbops.engines.postgresql.json_staging import MAX_JSON_DEPTH, Copier, JsonStagingSQL
from dbops.exceptions import BulkLoadRejected

SPOOL_IN_MEMORY = 16 << 20  # a snapshot copy passes through memory up to this size, then a temporary file
_LOCK_MODES = {"read": "SHARE", "write": "SHARE ROW EXCLUSIVE", "exclusive": "ACCESS EXCLUSIVE"}
_COPY_CONTEXT = re.compile(r"line (\d+)(?:, column (\w+))?")


class _HashSink(io.RawIOBase):
    """A write-only file object that hashes what COPY TO writes into it (memory stays flat)."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.hash.update(data if isinstance(data, bytes) else data.encode())
        return len(data)


class PostgreSQLData:
    """The data-service methods of the Connector interface, for PostgreSQL (see dbops.engines.base)."""

    connection: Any
    supports_copy = True
    copy_escapes = COPY_ESCAPES
    supports_json_staging = True
    supports_sql_masking = True

    def sql_masking(self, *, key: bytes, vocabulary: Any) -> masking_sql.MaskingSQL:
        # The key by COPY into a temporary table: never in a statement's text (masking_sql's docstring)
        # wrap_database_errors on each raw COPY: a lost connection is Django's DatabaseError, one line
        with self.connection.cursor() as cursor, self.connection.wrap_database_errors:
            cursor.execute(masking_sql.KEY_TABLE_CREATE)
            cursor.execute(f"TRUNCATE {masking_sql.KEY_TABLE}")
            cursor.cursor.copy_expert(masking_sql.KEY_TABLE_COPY, io.StringIO(masking_sql.key_copy_text(key)))
            cursor.execute(f"ANALYZE {masking_sql.KEY_TABLE}")  # a 9-row table, not the 880 rows a guess gives
            # The per-row subplans look costly to the planner, whose JIT compile then costs more than it saves
            cursor.execute("SET jit = off")
        return masking_sql.MaskingSQL(vocabulary)

    def table_schema(self, table: str) -> str | None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce((SELECT relnamespace::regnamespace::text FROM pg_class"
                " WHERE oid = to_regclass(%s)), current_schema())",
                ['"' + table.replace('"', '""') + '"'],
            )
            found = cursor.fetchone()[0]
        return found.strip('"') if found else None

    def sql_masking_end(self) -> None:
        with contextlib.suppress(DatabaseError), self.connection.cursor() as cursor:  # an aborted transaction
            cursor.execute(masking_sql.KEY_TABLE_DROP)
            cursor.execute("RESET jit")

    def json_staging(self, table: str, fields: list, defaults: dict[str, Any], copier: Copier) -> JsonStagingSQL:
        return JsonStagingSQL(self.connection, table, dict(self.table_columns(table)), fields, defaults, copier)

    def json_too_deep(self, queryset: Any, attname: str) -> Any:
        quote, opts = self.connection.ops.quote_name, queryset.model._meta
        column = f"{quote(opts.db_table)}.{quote(opts.get_field(attname).column)}"
        # A path of MAX_JSON_DEPTH levels below the value: the set-based import's limit too
        path = f"strict $.**{{{MAX_JSON_DEPTH}}}"
        deep = RawSQL(f"jsonb_path_exists({column}, %s)", [path], output_field=BooleanField())  # noqa: S611 - quoted names, the path a parameter
        return queryset.filter(deep).order_by("pk").values_list("pk", flat=True).first()

    def json_copier(self) -> Copier:
        return Copier(self.connection)

    # -- reading ------------------------------------------------------------------------------------------
    def rows_per_key(self, queryset: Any, *, key_field: str, keys: Sequence[Any], limit: int) -> Iterable[Any]:
        # One LATERAL subquery per key: a short index scan each, where a window ranks every row of every key.
        if not keys or limit <= 0:
            return []
        inner = queryset.filter(**{key_field: RawSQL("dbops_keys.key", ())})[:limit]
        sql, params = inner.query.sql_with_params()
        # The ORM's own SQL, every value a parameter.
        outer = f"SELECT dbops_keys.key AS {KEY_ATTRIBUTE}, dbops_rows.* FROM unnest(%s) AS dbops_keys(key) CROSS JOIN LATERAL ({sql}) AS dbops_rows"  # noqa: S608, E501
        # A nested loop emits each key's rows in the subquery's order; lazy, so the caller is the call site.
        return queryset.model._default_manager.db_manager(queryset.db).raw(outer, [list(keys), *params])

    # -- bulk loading --------------------------------------------------------------------------------
    def copy_text(self, value: Any) -> str:
        return copy_text(value)

    def copy_into(self, table: str, columns: list[str], text: str) -> None:
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with self.connection.cursor() as cursor, self.connection.wrap_database_errors:
            try:
                cursor.cursor.copy_expert(statement, io.StringIO(text))
            except self.connection.Database.DataError as exc:  # a value PostgreSQL's input functions reject
                context = getattr(getattr(exc, "diag", None), "context", None) or ""
                located = _COPY_CONTEXT.search(context)
                raise BulkLoadRejected(
                    str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    line=int(located.group(1)) if located else None,
                    column=(located.group(2) or None) if located else None,
                ) from exc

    def copy_json_lines(self, sql: str, params: Any, aliases: list[str], prefix: str) -> Callable[[Any], int]:
        quote = self.connection.ops.quote_name
        columns = ", ".join(quote(name) for name in aliases)

        def copy_into(handle) -> int:
            with self.connection.cursor() as cursor, self.connection.wrap_database_errors:
                raw = cursor.cursor
                inner = raw.mogrify(sql, params).decode()
                line = raw.mogrify("SELECT %s || row_to_json(t)::text || '}' ", [prefix]).decode()
                # CSV with control characters as delimiter and quote: row_to_json escapes those, so nothing
                # gets quoted and each line is exactly the JSON text (the text format would double backslashes).
                raw.copy_expert(
                    f"COPY ({line} FROM ({inner}) AS t({columns})) TO STDOUT "
                    "WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')",
                    handle,
                )
                return raw.rowcount

        return copy_into

    def index_suspension(self) -> IndexSuspension:
        return IndexSuspension(self.connection)

    def import_lock(self) -> bool:
        with self.connection.cursor() as cursor:  # released with the transaction, committed or not
            cursor.execute("SELECT pg_try_advisory_xact_lock(hashtext('dbops-import'))")
            return bool(cursor.fetchone()[0])

    def lock_tables(self, tables: list[str], *, mode: str) -> None:
        if mode not in _LOCK_MODES:
            raise ValueError(f"lock mode {mode!r} is not one of {tuple(_LOCK_MODES)}")
        if not tables:
            return
        quoted = ", ".join(self.connection.ops.quote_name(table) for table in tables)
        with self.connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {quoted} IN {_LOCK_MODES[mode]} MODE")

    def constraints_check(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    def consistent_read_begin(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def consistent_read_share(self) -> str:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot()")  # valid while this transaction stays open
            return cursor.fetchone()[0]

    def consistent_read_join(self, shared: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SET TRANSACTION SNAPSHOT %s", [shared])

    # -- snapshot copies ---------------------------------------------------------------------------------
    def table_copy_to(self, table: str, target, copy: str) -> int:
        if self.same_database(target) or type(target) is not type(self):
            return super().table_copy_to(table, target, copy)
        columns = self.table_columns(table)
        target.table_create(copy, columns)
        return _copy_between(self, f"COPY {self.connection.ops.quote_name(table)} TO STDOUT", target, copy, columns)

    def tables_refill_from(self, copies: dict[str, str], source) -> None:
        if self.same_database(source) or type(source) is not type(self):
            return super().tables_refill_from(copies, source)
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            for table in reversed(list(copies)):  # children first
                cursor.execute(f"DELETE FROM {quote(table)}")  # noqa: S608 - quoted identifier
        for table, copy in copies.items():
            columns = source.table_columns(copy)  # as the table was when the snapshot was taken
            _copy_between(source, f"COPY {quote(copy)} TO STDOUT", self, table, columns)
        return None

    def table_columns(self, table: str) -> list[tuple[str, str]]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                [self.connection.ops.quote_name(table)],
            )
            return [(name, kind) for name, kind in cursor.fetchall()]

    def table_checksum(self, table: str, order_by: str) -> str:
        quote = self.connection.ops.quote_name
        query = f"SELECT * FROM {quote(table)} ORDER BY {quote(order_by)}"  # noqa: S608 - quoted identifiers
        sink = _HashSink()
        with self.connection.cursor() as cursor, self.connection.wrap_database_errors:
            cursor.cursor.copy_expert(f"COPY ({query}) TO STDOUT", sink)
        return sink.hash.hexdigest()

    def tables_size_bytes(self, tables: list[str]) -> int:
        if not tables:
            return 0
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(pg_total_relation_size(c::regclass)), 0) FROM unnest(%s) AS c", [tables]
            )
            return int(cursor.fetchone()[0])

    def sequence_positions(self, tables: list[tuple[str, str]]) -> dict[str, list]:
        positions = {}
        with self.connection.cursor() as cursor:
            for table, column in tables:
                cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, column])
                sequence = cursor.fetchone()[0]
                if sequence:
                    cursor.execute(f"SELECT last_value, is_called FROM {sequence}")  # noqa: S608 - name from the catalog
                    positions[table] = [sequence, *cursor.fetchone()]
        return positions

    def sequence_positions_restore(self, positions: dict[str, list]) -> None:
        with self.connection.cursor() as cursor:
            for sequence, last_value, is_called in positions.values():
                cursor.execute("SELECT setval(%s, %s, %s)", [sequence, last_value, is_called])


def _copy_between(source, copy_out: str, target, table: str, columns: list[tuple[str, str]]) -> int:
    """Streams rows from `source` (a COPY … TO STDOUT statement) into `table` of `target` through a spool
    file (memory bounded, whatever the table's size); returns the rows loaded."""
    quote = target.connection.ops.quote_name
    copy_in = f"COPY {quote(table)} ({', '.join(quote(name) for name, _ in columns)}) FROM STDIN"
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, mode="w+b") as spool:
        with source.connection.cursor() as cursor, source.connection.wrap_database_errors:
            cursor.cursor.copy_expert(copy_out, spool)
        spool.seek(0)
        with target.connection.cursor() as cursor, target.connection.wrap_database_errors:
            cursor.cursor.copy_expert(copy_in, spool)
            return cursor.cursor.rowcount
