"""Reads SQL `INSERT` statements into records, never executing anything: the files export_data writes,
and any INSERT a database shell would accept for the entities' tables (a dump tool's `--inserts` /
`--column-inserts` output, hand-written files): keywords in any case, schema-qualified or unquoted
names, no column list (the table's columns in order), several rows per statement, `E'...'` and
dollar-quoted strings, casts (`'{}'::jsonb`), typed literals (`TIMESTAMP '...'`), `DEFAULT` (the
field is left to the import's default), comments, a dump's `\\restrict` lines. `SET`, `SELECT` (a
dump's set_config/setval) and transaction statements are skipped; any other statement is refused
with its line.

A file with export_data's header must also end with its COMMIT and counts line (a cut file is found).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections, router

from dbops.exceptions import ImportFormatError
from dbops.services.datamigration.entities import ENTITIES, Entity
from dbops.services.datamigration.formats import base

_IDENT = r'(?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*)'
_INSERT = re.compile(
    rf"INSERT\s+INTO\s+(?P<name>{_IDENT}(?:\s*\.\s*{_IDENT})*)\s*(?:\((?P<columns>[^)]*)\)\s*)?VALUES\s*\(",
    re.IGNORECASE,
)
_STRING = r"(?:[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*')"
_VALUE = re.compile(
    r"\s*(?:(?:(?:TIMESTAMP|TIMESTAMPTZ|DATE|TIME|INTERVAL)(?:\s+WITH(?:OUT)?\s+TIME\s+ZONE)?\s+)?(?P<string>"
    + _STRING
    + r")|(?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)"
    r"|(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)|(?P<word>NULL|TRUE|FALSE|DEFAULT)\b)"
    r"(?:\s*::\s*[A-Za-z_][\w .]*?(?:\s*\(\s*\d+(?:\s*,\s*\d+)?\s*\))?(?:\s*\[\])*)*\s*(?P<end>[,)])",
    re.IGNORECASE | re.DOTALL,
)
_NEXT_ROW = re.compile(r"\s*(?:(?P<more>,)\s*\(|(?P<done>;)|(?P<clause>ON\s+CONFLICT|RETURNING)\b)", re.IGNORECASE)
# Recent dumps bracket their output in the shell's \restrict / \unrestrict (they stop other meta-commands).
_SKIP = re.compile(r"(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/|\\(?:un)?restrict\b[^\n]*(?:\n|\Z))+", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_]+")
_REST_OF_STATEMENT = re.compile(r"""(?:'(?:[^']|'')*'|"(?:[^"]|"")*"|[^;'"])*;""")
_SKIPPED = frozenset({"BEGIN", "COMMIT", "END", "START", "SET", "SELECT", "ROLLBACK"})
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_BACKSLASH = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[0-7]{1,3}|.)", re.DOTALL)


def _identifier(text: str) -> str:
    text = text.strip()
    return text[1:-1].replace('""', '"') if text.startswith('"') else text.lower()  # unquoted names fold to lower case


def _escape(match: re.Match) -> str:
    code = match.group(1)
    if code[0] in "xuU" and len(code) > 1:
        return chr(int(code[1:], 16))
    if code[0].isdigit():
        return chr(int(code, 8))
    return _ESCAPES.get(code, code)


def _value(match: re.Match):
    """The Python value of one literal; DEFAULT as the class itself (the field is left out)."""
    if match.group("string") is not None:
        token = match.group("string")
        if token[0] in "Ee":
            return _BACKSLASH.sub(_escape, token[2:-1].replace("''", "'"))
        return token[1:-1].replace("''", "'")
    if match.group("dollar") is not None:
        tag_length = len(match.group("tag")) + 2
        return match.group("dollar")[tag_length:-tag_length]
    number = match.group("number")
    if number is not None:  # integers as int; others as their text, so a decimal keeps every digit
        return int(number) if number.lstrip("+-").isdigit() else number
    word = match.group("word").upper()
    return {"NULL": None, "TRUE": True, "FALSE": False}.get(word, _Default)


class _Default:
    """`DEFAULT` in a VALUES list."""


def _header(text: str, path: Path) -> bool:
    """Whether the file is export_data's own (then it must be complete); a wrong header is refused."""
    first_line = text.split("\n", 1)[0]
    if not first_line.startswith("-- {"):
        return False
    try:
        header = json.loads(first_line[3:])
    except json.JSONDecodeError:
        return False
    base.check_header(header, str(path))
    return True


def read_sql(path: Path) -> Iterator[base.Record]:
    """The rows of every INSERT statement of the file, as records of their tables' entities."""
    with base.decode_errors(path), base.open_text(path) as handle:
        text = handle.read()
    own_file = _header(text, path)
    numbers: dict[str, int] = {}
    position, committed, end_counts, statements = 0, False, None, 0
    counted_to, line = 0, 1  # counted on as we go: counting from the start each time is quadratic
    while True:
        skip = _SKIP.match(text, position)
        if skip:
            for comment in re.findall(r"--[^\n]*", skip.group(0)):
                if comment.startswith("-- end "):
                    end_counts = json.loads(comment[len("-- end ") :])
            position = skip.end()
        if position >= len(text):
            break
        line += text.count("\n", counted_to, position)
        counted_to = position
        where = f"{path}: line {line}"
        statement = _INSERT.match(text, position)
        if statement is None:
            word = _WORD.match(text, position)
            keyword = word.group(0).upper() if word else ""
            rest = _REST_OF_STATEMENT.match(text, position)
            if keyword in _SKIPPED and rest:
                committed = committed or keyword in ("COMMIT", "END")
                position = rest.end()
                continue
            if not own_file and not statements:
                raise ImportFormatError(
                    f"{path} is not an export_data file (no {base.FILE_MARKER!r} header) nor SQL INSERT statements "
                    f"(line {line} starts with {text[position : position + 20]!r})."
                )
            found = keyword or repr(text[position : position + 20])
            hint = " (dump the data as INSERT statements: the --inserts option)" if keyword == "COPY" else ""
            raise ImportFormatError(f"{where}: only INSERT statements are read, found {found}{hint}.")
        statements += 1
        entity, columns = _target(statement, where)
        position = statement.end()
        while True:
            position = yield from _rows(text, position, entity, columns, numbers, where)
            after = _NEXT_ROW.match(text, position)
            if after is None or after.group("clause"):
                clause = f" ({after.group('clause').upper()} is not read)" if after is not None else ""
                raise ImportFormatError(f"{where}: malformed INSERT statement{clause}.")
            position = after.end()
            if after.group("done"):
                break
    if own_file and (not committed or end_counts is None):
        raise ImportFormatError(f"{path}: truncated (no COMMIT / end line after {sum(numbers.values())} records).")


def _target(statement: re.Match, where: str) -> tuple[Entity, list[str]]:
    table = _identifier(re.split(r"\s*\.\s*(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", statement.group("name"))[-1])
    entity = ENTITIES.by_table(table)
    if entity is None:
        raise ImportFormatError(f"{where}: unknown table {table!r}.")
    if statement.group("columns") is None:  # the table's own column order, as a shell reads it
        return entity, _table_columns(entity)
    return entity, [_identifier(column) for column in statement.group("columns").split(",")]


def _table_columns(entity: Entity) -> list[str]:
    """The columns of the entity's table in the database's order (migrations may have added some late)."""
    database = connections[router.db_for_read(entity.model) or DEFAULT_DB_ALIAS]
    with database.cursor() as cursor:
        return [column.name for column in database.introspection.get_table_description(cursor, entity.table)]


def _rows(text: str, position: int, entity: Entity, columns: list[str], numbers: dict, where: str):
    """Yields the record of one parenthesized row; returns the position after it."""
    values = []
    while True:
        value = _VALUE.match(text, position)
        if not value:
            raise ImportFormatError(f"{where}: malformed or truncated VALUES list.")
        values.append(_value(value))
        position = value.end()
        if value.group("end") == ")":
            break
    if len(values) != len(columns):
        raise ImportFormatError(f"{where}: {len(values)} values for {len(columns)} columns.")
    by_column = {f.column: f.name for f in entity.model._meta.concrete_fields}
    json_fields, hidden = base.json_fields(entity), entity.never_exported
    record = {}
    for column, value in zip(columns, values, strict=True):
        name = by_column.get(column, column)
        if name in hidden or value is _Default:
            continue
        if name in json_fields and isinstance(value, str):
            try:
                value = base.json_loads(value)
            except json.JSONDecodeError:
                value = base.Unparsable(value)
            except RecursionError:
                raise ImportFormatError(f"{where}: {base.TOO_DEEP}.") from None
        record[name] = value
    numbers[entity.name] = numbers.get(entity.name, 0) + 1
    yield entity.name, numbers[entity.name], record
    return position
