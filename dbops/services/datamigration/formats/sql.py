"""sql: `INSERT INTO "table" (columns) VALUES (...);` one per record in dependency order between
BEGIN/COMMIT, standard literals only, so a database shell can run it as is. Read back by parsing
exactly those statements (nothing is executed)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from dbops.exceptions import ImportFormatError
from dbops.services.datamigration.entities import ENTITIES, Entity
from dbops.services.datamigration.formats import base


def sql_literal(value) -> str:
    if value is None or isinstance(value, bool):
        return "NULL" if value is None else str(value).upper()  # TRUE / FALSE
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        value = value.isoformat(sep=" ")
    elif isinstance(value, dict | list):
        value = base.encode_json(value)
    return "'" + str(value).replace("'", "''") + "'"


class SqlWriter(base.StreamWriter):
    def __init__(self, target: Path, *, header: dict) -> None:
        super().__init__(target, header=header)
        self.handle.write(f"-- {base.encode_json(self.header)}\nBEGIN;\n")

    def begin_entity(self, entity: Entity) -> None:
        super().begin_entity(entity)
        # NOT NULL columns that are never exported get a placeholder so a database shell can load the file
        # ("!" is Django's unusable password); import_data ignores them.
        self._placeholders = [f'"{name}"' for name in sorted(entity.never_exported)]
        columns = ", ".join([f'"{f.column}"' for f in entity.fields] + self._placeholders)
        self._prefix = f'INSERT INTO "{entity.table}" ({columns}) VALUES ('  # noqa: S608 - identifiers from models
        self._names = entity.field_names

    def write(self, record: dict) -> None:
        values = [sql_literal(record.get(name)) for name in self._names] + ["'!'"] * len(self._placeholders)
        self.handle.write(self._prefix + ", ".join(values) + ");\n")
        self.counts[self.entity.name] += 1

    def _finish(self) -> None:
        self.handle.write(f"COMMIT;\n-- end {base.encode_json(self.counts)}\n")
        super()._finish()


_SQL_INSERT = re.compile(r'\s*INSERT INTO "([^"]+)" \(([^)]*)\) VALUES \(')
_SQL_VALUE = re.compile(r"\s*('(?:[^']|'')*'|NULL|TRUE|FALSE|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*([,)])")
_ONLY_WHITESPACE_LEFT = re.compile(r"\s*\Z")
_SQL_SKIP = re.compile(r"\s*(?:--[^\n]*\n|BEGIN;|COMMIT;)")


def _sql_value(token: str):
    if token[0] == "'":  # noqa: S105 - SQL tokens, not passwords
        return token[1:-1].replace("''", "'")
    if token == "NULL":  # noqa: S105
        return None
    if token in ("TRUE", "FALSE"):
        return token == "TRUE"  # noqa: S105
    return float(token) if any(c in token for c in ".eE") else int(token)


def read_sql(path: Path) -> Iterator[base.Record]:
    """Reads the INSERT statements export_data writes (not arbitrary SQL: nothing is executed)."""
    with base.decode_errors(path), base.open_text(path) as handle:
        text = handle.read()
    first_line = text.split("\n", 1)[0]
    try:
        base.check_header(json.loads(first_line[3:]) if first_line.startswith("-- ") else None, str(path))
    except json.JSONDecodeError:
        base.check_header(None, str(path))
    numbers: dict[str, int] = {}
    position, committed, end_counts = 0, False, None
    counted_to, line = 0, 1  # line numbers counted on as we go: counting from the start each time is quadratic
    while position < len(text):
        skip = _SQL_SKIP.match(text, position)
        if skip:
            token = skip.group(0).strip()
            committed = committed or token == "COMMIT;"  # noqa: S105
            if token.startswith("-- end "):
                end_counts = json.loads(token[len("-- end ") :])
            position = skip.end()
            continue
        if _ONLY_WHITESPACE_LEFT.match(text, position):  # not text[position:].strip(): a copy per statement
            break
        statement = _SQL_INSERT.match(text, position)
        line += text.count("\n", counted_to, position)
        counted_to = position
        if not statement:
            raise ImportFormatError(f"{path}: line {line}: not an INSERT statement written by export_data.")
        entity = ENTITIES.by_table(statement.group(1))
        if entity is None:
            raise ImportFormatError(f"{path}: line {line}: unknown table {statement.group(1)!r}.")
        columns = [column.strip().strip('"') for column in statement.group(2).split(",")]
        by_column = {f.column: f.name for f in entity.fields}
        values, position = [], statement.end()
        while True:
            value = _SQL_VALUE.match(text, position)
            if not value:
                raise ImportFormatError(f"{path}: line {line}: malformed or truncated VALUES list.")
            values.append(_sql_value(value.group(1)))
            position = value.end()
            if value.group(2) == ")":
                break
        if not text.startswith(";", position) or len(values) != len(columns):
            raise ImportFormatError(f"{path}: line {line}: malformed INSERT statement.")
        position += 1
        json_fields = base.json_fields(entity)
        record = {}
        hidden = entity.never_exported
        for column, value in zip(columns, values, strict=True):
            name = by_column.get(column, column)
            if name in hidden:
                continue
            if name in json_fields and isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    value = base.Unparsable(value)
            record[name] = value
        numbers[entity.name] = numbers.get(entity.name, 0) + 1
        yield entity.name, numbers[entity.name], record
    if not committed or end_counts is None:
        raise ImportFormatError(f"{path}: truncated (no COMMIT / end line after {sum(numbers.values())} records).")
