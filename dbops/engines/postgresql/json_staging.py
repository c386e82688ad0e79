"""import_data's set-based path on PostgreSQL: records go in as raw JSON text (COPY, one `json` value per
line), and the type, length, range and privilege checks run as SQL over the whole table at once.

`jsonb` parses each record once; it keeps a number's scale (`1.0` stays `1.0`, which an integer column
refuses) but not an exponent (`1e2` becomes 100), so a line holding an exponent number never comes here
(set_based's EXPONENT).
Each check here is conservative: it accepts only what the Python checking path accepts too; whatever it
does not accept sends the file down that path, which names the problem.
"""

from __future__ import annotations

import io
from typing import Any

from dbops.engines.json_fields import JsonField

# Shapes the Python fast converters accept (fromisoformat, UUID, the IP address shape).
_DATETIME = r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d:\d\d)?$"
_DATETIME_OFFSET = r"(Z|[+-]\d\d:\d\d)$"
_DATE = r"^\d{4}-\d\d-\d\d$"
_UUID = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
_IP = r"^(\d{1,3}\.){3}\d{1,3}$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$"
_DECIMAL = r"^-?\d+(\.\d+)?$"
_INTEGER_LIMIT = 10**18  # up to 18 digits


def _lit(connection: Any, value: Any) -> str:
    with connection.cursor() as cursor:
        return cursor.cursor.mogrify("%s", [value]).decode()


def _ok_and_value(connection: Any, ref: str, spec: JsonField) -> tuple[str, str]:
    """(SQL true when the present, non-null value is plainly right, SQL of the column value)."""
    text = f"({ref} #>> '{{}}')"
    kind = spec.kind
    if kind == "integer":
        # What the shape ^-?[0-9]{1,18}$ of the number's text accepts, read as numeric (no text, no regex):
        # jsonb keeps a number's scale (1.0 has scale 1), and JSON has no leading zeros.
        number = f"({ref})::numeric"
        ok = f"jsonb_typeof({ref}) = 'number' AND scale({number}) = 0 AND abs({number}) < {_INTEGER_LIMIT}"
        if spec.low is not None:
            ok += f" AND {number} BETWEEN {int(spec.low)} AND {int(spec.high)}"
        return ok, f"({ref})::bigint"
    if kind == "boolean":
        return f"jsonb_typeof({ref}) = 'boolean'", f"({ref}::text)::boolean"
    if kind == "float":
        return f"jsonb_typeof({ref}) = 'number'", f"({ref}::text)::double precision"
    if kind == "decimal":
        return _decimal_ok(ref, text, spec), f"{text}::numeric"
    if kind == "json":
        return "true", f"{ref}::jsonb"
    string = f"jsonb_typeof({ref}) = 'string'"
    if kind == "text":
        length = f" AND char_length({text}) <= {int(spec.max_length)}" if spec.max_length else ""
        if spec.choices is not None:
            allowed = ", ".join(_lit(connection, value) for value in ("", *spec.choices))
            length += f" AND {text} IN ({allowed})"
        return string + length, text
    if kind == "datetime":  # a naive date-time is UTC, as the Python path reads it
        value = f"CASE WHEN {text} ~ '{_DATETIME_OFFSET}' THEN {text}::timestamptz ELSE ({text}::timestamp AT TIME ZONE 'UTC') END"  # noqa: E501
        return f"{string} AND {text} ~ '{_DATETIME}'", value
    if kind == "date":
        return f"{string} AND {text} ~ '{_DATE}'", f"{text}::date"
    if kind == "uuid":
        return f"{string} AND {text} ~ '{_UUID}'", f"{text}::uuid"
    if kind == "ip":
        return f"{string} AND {text} ~ '{_IP}'", f"{text}::inet"
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
    """The statements of one entity's raw table `raw` (quoted): `recno bigint, doc json`."""

    def __init__(self, connection: Any, raw: str, fields: list[JsonField], defaults: dict[str, Any]) -> None:
        self.connection, self.raw, self.fields = connection, raw, fields
        record = ", ".join(f"{_quote_ident(f.key)} jsonb" for f in fields)
        self.source = f"{raw} s, LATERAL jsonb_to_record(s.doc) AS r({record})"
        self.defaults = defaults  # key -> the constant filled in when a record leaves the field out

    def create(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.raw}")
            cursor.execute(f"CREATE TEMPORARY TABLE {self.raw} (recno bigint, doc jsonb)")

    def copy(self, lines: str) -> None:
        """`recno \\x02 json` lines; CSV with control characters as delimiter and quote, so JSON goes in verbatim."""
        with self.connection.cursor() as cursor, self.connection.wrap_database_errors:
            cursor.cursor.copy_expert(
                f"COPY {self.raw} (recno, doc) FROM STDIN WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')",
                io.StringIO(lines),
            )

    def _ref(self, spec: JsonField) -> str:
        return f"r.{_quote_ident(spec.key)}"

    def _doubtful(self) -> str:
        """SQL true for a record a set-based check does not plainly accept."""
        conditions = ["jsonb_typeof(s.doc) <> 'object'"]
        keys = ", ".join(_lit(self.connection, f.key) for f in self.fields)
        conditions.append(f"(s.doc - ARRAY[{keys}]::text[]) <> '{{}}'::jsonb")  # a key that is no field
        for spec in self.fields:
            ref = self._ref(spec)
            ok, _value = _ok_and_value(self.connection, ref, spec)
            if spec.privileged:
                conditions.append(f"({ref} IS NOT NULL AND jsonb_typeof({ref}) <> 'null' AND {ref}::text <> 'false')")
            if spec.key not in self.defaults:
                conditions.append(f"{ref} IS NULL")
            null_ok = "true" if spec.null else "false"
            conditions.append(
                f"({ref} IS NOT NULL AND CASE WHEN jsonb_typeof({ref}) = 'null' THEN NOT {null_ok} ELSE NOT ({ok}) END)"
            )
        return " OR ".join(conditions)

    def values(self, key: str):
        """(recno, the value as JSON text) of every record carrying the field `key` with a non-null value."""
        ref = f"r.{_quote_ident(key)}"
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT s.recno, {ref}::text FROM {self.source} WHERE jsonb_typeof({ref}) <> 'null'"  # noqa: S608
            )
            yield from cursor.fetchall()

    def insert_into(self, stage: str, columns: list[str], extra: list[str]) -> int:
        """Fills the typed staging table from the raw one with the records the checks plainly accept (the
        record's number and its fields' mask too); the rows inserted, fewer than the raw rows when any
        record is doubtful. The checks ride on the same pass: a separate pass for them cost as much
        again as the insert."""
        expressions, mask = [], []
        for spec in self.fields:
            ref = self._ref(spec)
            _ok, value = _ok_and_value(self.connection, ref, spec)
            if spec.key in self.defaults:
                default = _lit(self.connection, self.defaults[spec.key])
                value = f"CASE WHEN {ref} IS NULL THEN {default} WHEN jsonb_typeof({ref}) = 'null' THEN NULL ELSE {value} END"  # noqa: E501
            else:
                value = f"CASE WHEN jsonb_typeof({ref}) = 'null' THEN NULL ELSE {value} END"
            expressions.append(value)
            mask.append(f"CASE WHEN {ref} IS NULL THEN '0' ELSE '1' END")
        select = ", ".join([*expressions, "s.recno", f"concat({', '.join(mask)})"])
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {stage} ({', '.join([*columns, *extra])}) SELECT {select} "  # noqa: S608
                f"FROM {self.source} WHERE ({self._doubtful()}) IS NOT TRUE"
            )
            return cursor.rowcount

    def drop(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {self.raw}")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
