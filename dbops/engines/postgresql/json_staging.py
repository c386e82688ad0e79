"""import_data's set-based path on PostgreSQL: records go in as raw JSON text (COPY, one `json` value per
line), and the type, length, range and privilege checks run as SQL over the whole table at once.

`jsonb` parses each record once; it keeps a number's scale (`1.0` stays `1.0`, which an integer column
refuses) but not an exponent (`1e2` becomes 100), so a line holding an exponent number never comes here
(set_based's EXPONENT).
Each check here is conservative: it accepts only what the Python checking path accepts too; whatever it
does not accept sends the file down that path, which names the problem.

The raw table is an UNLOGGED table created inside the import's transaction, not a temporary one: no other
session sees it before commit (and the import drops it before), a killed import leaves nothing (the
transaction's catalog rows die with it), yet parallel workers may scan it, which they may not do for a
temporary table. The staging table is then made by CREATE TABLE AS, which (unlike INSERT … SELECT) runs
its SELECT in parallel: the checks and conversions, most of the server's share of an import, on every core.
"""

from __future__ import annotations

import hashlib
import io
import queue
import sys
import threading
from typing import Any

from django.db import OperationalError

from dbops.engines.json_fields import JsonField

# Shapes the checking path's converters accept (fromisoformat, UUID), as the text of the value with every
# digit (and for UUIDs every hex digit) turned into 0: one hashed IN-list lookup per value, where a regex
# cost four times as much (PostgreSQL's \d also takes digits of other scripts, which Python's parsers refuse).
_DIGITS = ("123456789", "000000000")
_HEX = ("123456789abcdefABCDEF", "0" * 21)
_TIMES = ("00:00", "00:00:00", *(f"00:00:00.{'0' * places}" for places in range(1, 7)))
_DATETIME_SHAPES = tuple(
    f"0000-00-00{separator}{time}{zone}"
    for separator in ("T", " ")
    for time in _TIMES
    for zone in ("", "Z", "+00:00", "-00:00")
)
_UUID_SHAPES = tuple(
    "00000000" + h1 + "0000" + h2 + "0000" + h3 + "0000" + h4 + "000000000000"
    for h1 in ("", "-")
    for h2 in ("", "-")
    for h3 in ("", "-")
    for h4 in ("", "-")
)
_DECIMAL = r"^-?\d+(\.\d+)?$"
_TEXT_KINDS = ("text", "datetime", "date", "uuid", "ip")


def _lit(connection: Any, value: Any) -> str:
    with connection.cursor() as cursor:
        return cursor.cursor.mogrify("%s", [value]).decode()


MAX_JSON_DEPTH = 500  # nesting levels the set-based path accepts in a JSON field (0: the value itself)


def _shape(text: str, digits: tuple[str, str], shapes: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{shape}'" for shape in shapes)
    return f"translate({text}, '{digits[0]}', '{digits[1]}') IN ({listed})"


def _ok_and_value(connection: Any, ref: str, text: str, spec: JsonField) -> tuple[str, str]:
    """(SQL true when the present, non-null value is plainly right, SQL of the column value). `ref` is
    the value as jsonb, `text` as text (a string unquoted); both are SQL NULL for a JSON null, so every
    value expression gives NULL for it."""
    kind = spec.kind
    if kind == "integer":
        # jsonb keeps a number's scale (1.0 has scale 1), so scale 0 is an integer as the file wrote it.
        number = f"({ref})::numeric"
        low, high = (spec.low, spec.high) if spec.low is not None else (-(2**63), 2**63 - 1)
        ok = f"jsonb_typeof({ref}) = 'number' AND scale({number}) = 0 AND {number} BETWEEN {int(low)} AND {int(high)}"
        return ok, f"({ref})::bigint"
    if kind == "boolean":
        return f"jsonb_typeof({ref}) = 'boolean'", f"({ref})::boolean"
    if kind == "float":
        return f"jsonb_typeof({ref}) = 'number'", f"({ref})::double precision"
    if kind == "decimal":
        return _decimal_ok(ref, text, spec), f"{text}::numeric"
    if kind == "json":  # a JSON null is a JSON value where the field takes no SQL null, as the checking path keeps it
        # jsonb nests as deep as it likes, Python's parser not (about a thousand levels): a deep value goes
        # the checking way, which refuses what Python cannot read back (an export of it would fail)
        ok = f"NOT jsonb_path_exists({ref}, 'strict $.**{{{MAX_JSON_DEPTH}}}')"
        return ok, ref if spec.null else f"coalesce({ref}, 'null'::jsonb)"
    string = f"jsonb_typeof({ref}) = 'string'"
    if kind == "text":
        length = f" AND char_length({text}) <= {int(spec.max_length)}" if spec.max_length else ""
        if not spec.blank:
            length += f" AND {text} <> ''"
        if spec.choices is not None:
            allowed = ", ".join(_lit(connection, value) for value in ("", *spec.choices))
            length += f" AND {text} IN ({allowed})"
        return string + length, text
    if kind == "datetime":
        # PostgreSQL rolls 24:00 and a 60th second over to the next day or minute; Python refuses both.
        # A naive date-time is UTC, as the checking path reads it.
        c = 'COLLATE "C"'
        ranges = f"substr({text}, 12, 2) {c} < '24' AND substr({text}, 15, 2) {c} < '60' AND substr({text}, 18, 2) {c} < '60'"  # noqa: E501
        zoned = f"right({text}, 1) = 'Z' OR substr({text}, length({text}) - 5, 1) IN ('+', '-')"
        value = f"(CASE WHEN {zoned} THEN {text} ELSE {text} || '+00:00' END)::timestamptz"
        return f"{string} AND {_shape(text, _DIGITS, _DATETIME_SHAPES)} AND {ranges}", value
    if kind == "date":
        return f"{string} AND {_shape(text, _DIGITS, ('0000-00-00',))}", f"{text}::date"
    if kind == "uuid":
        return f"{string} AND {_shape(text, _HEX, _UUID_SHAPES)}", f"{text}::uuid"
    if kind == "ip":
        # inet also takes a netmask and IPv4 octets with leading zeros (01.2.3.4), which Python refuses:
        # an IPv4 address, or one with an embedded IPv4 part, must read back as written.
        address = f"{text}::inet"
        ok = f"strpos({text}, '/') = 0 AND (strpos({text}, '.') = 0 OR host({address}) = {text})"
        return f"{string} AND {ok}", address
    raise ValueError(f"unknown kind {kind!r}")


def _decimal_ok(ref: str, text: str, spec: JsonField) -> str:
    """A number, or a string of plain decimal digits (export_data writes a Decimal as text), read exactly as
    numeric, with at most decimal_places after the point: numeric would round the rest away. Too many
    digits before it the staging column (numeric(max_digits, decimal_places), as the target) refuses, and
    the file goes the checking way; Django's DecimalValidator also counts a bare 0 as one such digit."""
    number = f"{text}::numeric"
    fits = f"scale({number}) <= {int(spec.decimal_places)}"
    if spec.max_digits == spec.decimal_places:
        fits += f" AND scale({number}) > 0"
    shape = f"jsonb_typeof({ref}) = 'number' OR (jsonb_typeof({ref}) = 'string' AND {text} ~ '{_DECIMAL}')"
    return f"CASE WHEN {shape} THEN {fits} ELSE false END"  # CASE: no cast of text that is no number


class JsonStagingSQL:
    """The statements of one entity's raw table `raw` (quoted): `recno bigint, doc jsonb`."""

    def __init__(
        self,
        connection: Any,
        table: str,
        column_types: dict[str, str],
        fields: list[JsonField],
        defaults: dict[str, Any],
        copier: Copier,
    ) -> None:
        """`column_types`: each column of `table` -> its type in SQL (Connector.table_columns)."""
        self.connection, self.fields, self.column_types = connection, fields, column_types
        self.shared = _may_create_tables(connection)  # else a temporary table: correct, only not parallel
        self.raw = _raw_name(connection, table, shared=self.shared)
        # Each field as jsonb (its type, for the checks) and, for those read as text, as text too:
        # one expansion of the record instead of a `#>> '{}'` per use. Both give SQL NULL for a JSON
        # null and for an absent key alike; `s.doc ? key` tells them apart.
        record = ", ".join(f"{_quote_ident(f.key)} jsonb" for f in fields)
        texts = ", ".join(f"{_quote_ident(f.key)} text" for f in fields if f.kind in _TEXT_KINDS)
        self.source = f"{self.raw} s, LATERAL jsonb_to_record(s.doc) AS r({record})"
        if texts:
            self.source += f", LATERAL jsonb_to_record(s.doc) AS t({texts})"
        self.defaults = defaults  # key -> the constant filled in when a record leaves the field out
        self.key_literals = {f.key: _lit(connection, f.key) for f in fields}  # once: each is a round of mogrify
        self.copier = copier

    def create(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.raw}")
            kind = "UNLOGGED" if self.shared else "TEMPORARY"
            cursor.execute(f"CREATE {kind} TABLE {self.raw} (recno bigint, doc jsonb)")

    def copy(self, lines: str) -> None:
        """`recno \x02 json` lines; CSV with control characters as delimiter and quote, so JSON goes in verbatim.
        Through the copier: it returns at once; copier.wait() before anything else uses the connection."""
        statement = f"COPY {self.raw} (recno, doc) FROM STDIN WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')"
        self.copier.put(statement, lines)

    def _parts(self, spec: JsonField) -> tuple[str, str, str]:
        """(the value as jsonb, as text, whether the record carries the key) in SQL."""
        key = _quote_ident(spec.key)
        text = f"t.{key}" if spec.kind in _TEXT_KINDS else f"(r.{key} #>> '{{}}')"
        return f"r.{key}", text, f"(s.doc ? {self.key_literals[spec.key]})"

    def _doubtful(self) -> str:
        """SQL true for a record a set-based check does not plainly accept."""
        conditions = ["jsonb_typeof(s.doc) <> 'object'"]
        keys = ", ".join(self.key_literals.values())
        conditions.append(f"(s.doc - ARRAY[{keys}]::text[]) <> '{{}}'::jsonb")  # a key that is no field
        for spec in self.fields:
            ref, text, present = self._parts(spec)
            ok, _value = _ok_and_value(self.connection, ref, text, spec)
            if spec.privileged:
                conditions.append(f"({ref} IS NOT NULL AND {ref}::text <> 'false')")
            if spec.key not in self.defaults:
                conditions.append(f"NOT {present}")  # a required field left out
            if not spec.null and spec.kind != "json":  # json: a JSON null is kept as a value (_ok_and_value)
                conditions.append(f"({ref} IS NULL AND {present})")  # a JSON null where none may be
            conditions.append(f"({ref} IS NOT NULL AND NOT ({ok}))")
        return " OR ".join(conditions)

    def values(self, key: str):
        """(recno, the value as JSON text) of every record carrying the field `key` with a non-null value."""
        ref = f"r.{_quote_ident(key)}"
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT s.recno, {ref}::text FROM {self.source} WHERE {ref} IS NOT NULL"  # noqa: S608
            )
            yield from cursor.fetchall()

    def stage_create(self, stage: str, columns: list[str], recno: str, mask: str) -> int:
        """Creates the temporary staging table `stage` (quoted) with these columns (names) of the target, of
        its types, then the record's number `recno` and its fields' mask `mask` (names). From the records
        the checks plainly accept; the rows it holds, fewer than the raw rows when any record is doubtful.
        The checks ride on the same pass: a separate pass for them cost as much again."""
        expressions, bits = [], []
        for spec, column in zip(self.fields, columns, strict=True):
            ref, text, present = self._parts(spec)
            _ok, value = _ok_and_value(self.connection, ref, text, spec)
            if spec.key in self.defaults:
                default = _lit(self.connection, self.defaults[spec.key])
                value = f"CASE WHEN {present} THEN {value} ELSE {default} END"  # a JSON null stays NULL
            # Only accepted values reach the cast (WHERE runs first), so a varchar(n) cast never truncates.
            expressions.append(f"({value})::{self.column_types[column]} AS {_quote_ident(column)}")
            bits.append(f"CASE WHEN {present} THEN '1' ELSE '0' END")
        width = max(len(bits), 1)
        select = ", ".join(
            [
                *expressions,
                f"s.recno AS {_quote_ident(recno)}",
                f"concat({', '.join(bits)})::varchar({width}) AS {_quote_ident(mask)}",
            ]
        )
        with self.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {stage}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {stage} AS SELECT {select} "  # noqa: S608
                f"FROM {self.source} WHERE ({self._doubtful()}) IS NOT TRUE"
            )
            return cursor.rowcount

    def drop(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {self.raw}")


class Copier:
    """COPY statements run in order by a second thread on the caller's connection while the caller reads
    the next lines: the server parses JSON about as fast as Python splits lines, and each waited for the
    other. The driver does not keep two threads off one connection during a COPY, so the caller calls
    wait() before it uses the connection itself. At most one chunk waits in the queue: memory stays
    bounded. The first error stops the rest and is raised by wait(), as the database's error."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.dbapi = connection.connection
        self.chunks: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="dbops-import-copy", daemon=True)
        self.thread.start()
        # When the server ends the session mid-COPY, the driver prints the error (with the CONTEXT line,
        # which quotes the record being sent: personal data on the terminal) through sys.excepthook before
        # raising it; the caller reports the raised error in one line, so the copy of it is dropped.
        self._excepthook = sys.excepthook
        sys.excepthook = self._quiet_in_copy_thread

    def _quiet_in_copy_thread(self, kind, value, traceback) -> None:
        if threading.get_ident() != self.thread.ident:
            self._excepthook(kind, value, traceback)

    def __enter__(self) -> Copier:
        return self

    def __exit__(self, *exc_info) -> None:
        self.chunks.put(None)
        self.thread.join()  # nothing runs on the connection once the caller goes on (or rolls back)
        if sys.excepthook == self._quiet_in_copy_thread:
            sys.excepthook = self._excepthook

    def put(self, statement: str, lines: str) -> None:
        self._raise()
        self.chunks.put((statement, lines))

    def wait(self) -> None:
        self.chunks.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is None:
            return
        if self.dbapi.closed:  # the server went away mid-COPY (the driver's error may then be a SystemError)
            raise OperationalError("the connection to the database was lost while the import sent its rows") from None
        with self.connection.wrap_database_errors:
            raise self.error

    def _run(self) -> None:
        while True:
            item = self.chunks.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    statement, lines = item
                    with self.dbapi.cursor() as cursor:
                        cursor.copy_expert(statement, io.BytesIO(lines.encode()))
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by wait()
                self.error = exc
            finally:
                self.chunks.task_done()


def _may_create_tables(connection: Any) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT has_schema_privilege(current_schema(), 'CREATE')")
        return bool(cursor.fetchone()[0])


def _raw_name(connection: Any, table: str, *, shared: bool) -> str:
    """Unique to this session (its backend's pid) when shared, and at most 63 bytes, which PostgreSQL would
    otherwise cut (two long table names alike at the start would then share one raw table)."""
    name = f"_dbops_raw_{table}"
    if shared:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            name += f"_{cursor.fetchone()[0]}"
    if len(name.encode()) > 63:
        name = f"_dbops_raw_{hashlib.sha256(name.encode()).hexdigest()[:40]}"
    return _quote_ident(name)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
