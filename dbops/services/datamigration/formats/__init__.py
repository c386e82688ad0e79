"""The four file formats of export_data / import_data: writers that stream records out, readers that
stream them back as (entity, record number, record).

- json: one document `{"format": "multipult-export", "version": 1, ..., "entities": {name: [records]}}`
  (written and read as a stream: memory stays bounded by the largest record, not the file).
- jsonl: a header line, one `{"entity": name, "data": record}` line per record, an `{"end": ...}`
  line with the row counts (a file cut short has no end line and is rejected).
- csv: `manifest.json` plus one `<entity>.csv` per entity (header row = field names), in a folder or
  a .zip. Empty cells are NULL for non-text columns; JSON columns hold JSON text.
- sql: `INSERT INTO "table" (columns) VALUES (...);` one per record in dependency order between
  BEGIN/COMMIT, standard literals only, so psql or sqlite3 can run it as is.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import json.scanner
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from uuid import UUID

from django.db import models

from dbops.exceptions import DataMigrationError, ImportFormatError
from dbops.services.datamigration.entities import ENTITIES, Entity
from dbops.services.datamigration.json_stream import JsonDocumentReader, JsonShapeError, JsonStreamError

FORMATS = ("json", "jsonl", "csv", "sql")
# The format's name since its first files: changing it would make every file written so far unreadable.
FILE_MARKER = "multipult-export"
FILE_VERSION = 1


def _json_default(value):
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)  # a Decimal as text keeps every digit; import_data reads both back
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(record: dict) -> str:
    return json.dumps(record, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _text_fields(entity: Entity) -> set[str]:
    return {f.name for f in entity.fields if isinstance(f, models.CharField | models.TextField)}


def _json_fields(entity: Entity) -> set[str]:
    return {f.name for f in entity.fields if isinstance(f, models.JSONField)}


# --- writers ----------------------------------------------------------------------------------------


class ExportWriter:
    """Writes into a temporary sibling of the target and moves it into place only on success, so a
    failed export leaves whatever was at the target untouched."""

    def __init__(self, target: Path, *, header: dict) -> None:
        self.target = target
        self.header = {"format": FILE_MARKER, "version": FILE_VERSION, **header}
        self.counts: dict[str, int] = {}
        self.entity: Entity | None = None
        self._temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))

    def begin_entity(self, entity: Entity) -> None:
        self.entity = entity
        self.counts[entity.name] = 0

    def write(self, record: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def end_entity(self) -> None:
        self.entity = None

    def _finish(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self) -> int:
        """Closes the file, moves it into place and returns its size in bytes."""
        self._finish()
        produced = self._temp / "out"
        if produced.is_dir():
            if self.target.exists():
                shutil.rmtree(self.target) if self.target.is_dir() else self.target.unlink()
            size = sum(path.stat().st_size for path in produced.rglob("*") if path.is_file())
        else:
            size = produced.stat().st_size
        os.replace(produced, self.target)
        shutil.rmtree(self._temp, ignore_errors=True)
        return size

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._close_quietly()
        shutil.rmtree(self._temp, ignore_errors=True)

    def _close_quietly(self) -> None:
        pass


class _StreamWriter(ExportWriter):
    def __init__(self, target: Path, *, header: dict) -> None:
        super().__init__(target, header=header)
        self.handle = open(self._temp / "out", "w", encoding="utf-8", newline="\n")  # noqa: SIM115

    def _finish(self) -> None:
        self.handle.close()

    def _close_quietly(self) -> None:
        self.handle.close()


class JsonWriter(_StreamWriter):
    def __init__(self, target: Path, *, header: dict) -> None:
        super().__init__(target, header=header)
        self.handle.write(encode_json(self.header)[:-1] + ',"entities":{')
        self._first_entity = True

    def begin_entity(self, entity: Entity) -> None:
        super().begin_entity(entity)
        self.handle.write(("" if self._first_entity else "],") + f"\n{json.dumps(entity.name)}:[")
        self._first_entity = False

    def write(self, record: dict) -> None:
        self.handle.write(("\n" if self.counts[self.entity.name] == 0 else ",\n") + encode_json(record))
        self.counts[self.entity.name] += 1

    def _finish(self) -> None:
        self.handle.write(("" if self._first_entity else "]") + "}}\n")
        super()._finish()


class JsonlWriter(_StreamWriter):
    def __init__(self, target: Path, *, header: dict) -> None:
        super().__init__(target, header=header)
        self.handle.write(encode_json(self.header) + "\n")
        self._prefix = ""

    def begin_entity(self, entity: Entity) -> None:
        super().begin_entity(entity)
        self._prefix = '{"entity":' + json.dumps(entity.name) + ',"data":'

    @property
    def copy_prefix(self) -> str:
        return self._prefix

    def write_copy(self, copy_into) -> None:
        """Lets the database write this entity's lines straight into the file (PostgreSQL COPY)."""
        self.handle.flush()
        self.counts[self.entity.name] += copy_into(self.handle)

    def write(self, record: dict) -> None:
        self.handle.write(self._prefix + encode_json(record) + "}\n")
        self.counts[self.entity.name] += 1

    def _finish(self) -> None:
        self.handle.write(encode_json({"end": True, "counts": self.counts}) + "\n")
        super()._finish()


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return encode_json(value)
    return str(value)


class CsvWriter(ExportWriter):
    """One CSV per entity plus manifest.json, in a folder or (target ends with .zip) a zip archive."""

    def __init__(self, target: Path, *, header: dict) -> None:
        super().__init__(target, header=header)
        self.zipped = target.suffix.lower() == ".zip"
        if self.zipped:
            self.archive = zipfile.ZipFile(self._temp / "out", "w", compression=zipfile.ZIP_DEFLATED)
        else:
            (self._temp / "out").mkdir()
        self.fields: dict[str, list[str]] = {}
        self._handle = None

    def begin_entity(self, entity: Entity) -> None:
        super().begin_entity(entity)
        name = f"{entity.name}.csv"
        if self.zipped:
            raw = self.archive.open(name, "w", force_zip64=True)
            self._handle = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        else:
            self._handle = open(self._temp / "out" / name, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._csv = csv.writer(self._handle)
        self.fields[entity.name] = entity.field_names
        self._csv.writerow(entity.field_names)
        self._names = entity.field_names

    def write(self, record: dict) -> None:
        self._csv.writerow([_csv_cell(record.get(name)) for name in self._names])
        self.counts[self.entity.name] += 1

    def end_entity(self) -> None:
        self._handle.close()
        self._handle = None
        super().end_entity()

    def _finish(self) -> None:
        manifest = {
            **self.header,
            "entities": {
                name: {"file": f"{name}.csv", "fields": self.fields[name], "rows": count}
                for name, count in self.counts.items()
            },
        }
        text = json.dumps(manifest, indent=2, default=_json_default)
        if self.zipped:
            self.archive.writestr("manifest.json", text)
            self.archive.close()
        else:
            (self._temp / "out" / "manifest.json").write_text(text, encoding="utf-8")

    def _close_quietly(self) -> None:
        if self._handle:
            self._handle.close()
        if self.zipped:
            self.archive.close()


def sql_literal(value) -> str:
    if value is None:
        return "NULL"
    if value is True:
        return "TRUE"
    if value is False:
        return "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        value = value.isoformat(sep=" ")
    elif isinstance(value, dict | list):
        value = encode_json(value)
    return "'" + str(value).replace("'", "''") + "'"


class SqlWriter(_StreamWriter):
    def __init__(self, target: Path, *, header: dict) -> None:
        super().__init__(target, header=header)
        self.handle.write(f"-- {encode_json(self.header)}\nBEGIN;\n")

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
        self.handle.write(f"COMMIT;\n-- end {encode_json(self.counts)}\n")
        super()._finish()


WRITERS: dict[str, type[ExportWriter]] = {"json": JsonWriter, "jsonl": JsonlWriter, "csv": CsvWriter, "sql": SqlWriter}


def open_writer(fmt: str, target: Path, *, header: dict) -> ExportWriter:
    if fmt not in WRITERS:
        raise DataMigrationError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    return WRITERS[fmt](target, header=header)


# --- readers ----------------------------------------------------------------------------------------

Record = tuple[str, int, dict]


def _check_header(header, source: str) -> dict:
    if not isinstance(header, dict) or header.get("format") != FILE_MARKER:
        raise ImportFormatError(f"{source} is not an export_data file (no {FILE_MARKER!r} header).")
    if header.get("version") != FILE_VERSION:
        raise ImportFormatError(f"{source}: unsupported export version {header.get('version')!r}.")
    return header


def _entity_named(name, source: str) -> Entity:
    if name not in ENTITIES:
        raise ImportFormatError(f"{source}: unknown entity {name!r}; valid: {', '.join(ENTITIES)}.")
    return ENTITIES[name]


def _open_text(path: Path):
    if not path.is_file():
        raise ImportFormatError(f"{path} is not a file.")
    return open(path, encoding="utf-8", newline="")  # noqa: SIM115


def _decode_errors(path: Path):
    """Turns a bad byte sequence into one readable message instead of a traceback."""

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start}).") from None

    return guard()


def read_json(path: Path) -> Iterator[Record]:
    """Streams the records of a json export (bounded memory, see json_stream). The header is checked as
    soon as it has been read (before `entities` in files we write), else at the end: records are only
    staged until the whole file has been read, so a late refusal still writes nothing."""
    source = str(path)
    header: dict = {}
    numbers: dict[str, int] = {}
    with _decode_errors(path), _open_text(path) as handle:
        reader = JsonDocumentReader(handle)
        try:
            for name, record in reader.read(header):
                if not numbers and "format" in header:
                    _check_header(header, source)
                if name not in numbers:
                    _entity_named(name, source)
                    numbers[name] = 0
                numbers[name] += 1
                yield name, numbers[name], record
        except JsonStreamError as exc:
            hint = " (one JSON document per line? then use --format jsonl)" if exc.msg == "Extra data" else ""
            raise ImportFormatError(
                f"{path}: malformed or truncated JSON at line {exc.line}, column {exc.column}: {exc.msg}{hint}."
            ) from None
        except JsonShapeError as exc:
            _check_header(header, source)  # a file that is no export at all says so first
            raise ImportFormatError(f"{path}: {exc}.") from None
    _check_header(header, source)
    if not reader.saw_entities:
        raise ImportFormatError(f"{path}: no 'entities' object.")


_scan_json = json.scanner.make_scanner(json.JSONDecoder())


def _json_line(line: str):
    """json.loads(line) without its Python wrapper (the C scanner straight away): a fifth of the
    reading time of a big file. Anything unusual goes through json.loads, which gives its own error."""
    try:
        value, end = _scan_json(line, 0)
    except (StopIteration, ValueError):
        return json.loads(line)
    if line[end:].strip(" \t\n\r"):
        return json.loads(line)
    return value


def read_jsonl(path: Path) -> Iterator[Record]:
    numbers: dict[str, int] = {}
    line_number = 0
    with _decode_errors(path), _open_text(path) as handle:
        ended = False
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if ended:
                raise ImportFormatError(f"{path}: line {line_number}: data after the end line.")
            try:
                item = _json_line(line)
            except json.JSONDecodeError as exc:
                cut = "" if line.endswith("\n") else " (the file looks truncated)"
                if line_number == 1:
                    cut += "; is this a .json file? then use --format json"
                raise ImportFormatError(f"{path}: line {line_number}: malformed JSON: {exc.msg}{cut}.") from None
            if line_number == 1:
                _check_header(item, str(path))
                continue
            if not isinstance(item, dict):
                raise ImportFormatError(f"{path}: line {line_number}: expected a JSON object.")
            if item.get("end") is True:
                ended = True
                if item.get("counts") != numbers:
                    raise ImportFormatError(
                        f"{path}: the end line counts {item.get('counts')} records but the file holds {numbers}."
                    )
                continue
            name = item.get("entity")
            if name not in ENTITIES:  # the message (with its path) is only formatted when needed
                _entity_named(name, f"{path}: line {line_number}")
            numbers[name] = numbers.get(name, 0) + 1
            yield name, numbers[name], item.get("data")
        if line_number == 0:
            raise ImportFormatError(f"{path} is empty.")
        if not ended:
            raise ImportFormatError(f"{path}: truncated (no end line after {sum(numbers.values())} records).")


def _csv_value(value: str, name: str, text_fields: set[str], json_fields: set[str]):
    if name in json_fields:
        try:
            return json.loads(value) if value != "" else None
        except json.JSONDecodeError:
            return Unparsable(value)
    if value == "" and name not in text_fields:
        return None
    return value


class Unparsable(str):
    """A cell that should hold JSON but does not; validation reports it with its record number."""


class _CsvSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        if zipfile.is_zipfile(path):
            self.archive = zipfile.ZipFile(path)
        elif path.is_dir():
            self.archive = None
        else:
            raise ImportFormatError(f"{path}: --format csv needs a .zip archive or a folder written by export_data.")

    def open(self, name: str):
        try:
            if self.archive is not None:
                return io.TextIOWrapper(self.archive.open(name), encoding="utf-8", newline="")
            return open(self.path / name, encoding="utf-8", newline="")  # noqa: SIM115
        except (KeyError, FileNotFoundError):
            raise ImportFormatError(f"{self.path}: {name} is missing.") from None

    def open_binary(self, name: str):
        try:
            if self.archive is not None:
                return self.archive.open(name)
            return open(self.path / name, "rb")  # noqa: SIM115
        except (KeyError, FileNotFoundError):
            raise ImportFormatError(f"{self.path}: {name} is missing.") from None

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def read_csv(path: Path) -> Iterator[Record]:
    source = _CsvSource(path)
    try:
        with source.open("manifest.json") as handle:
            try:
                manifest = json.load(handle)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ImportFormatError(f"{path}: manifest.json is malformed: {exc}.") from None
        _check_header(manifest, f"{path} manifest.json")
        for name, info in manifest.get("entities", {}).items():
            entity = _entity_named(name, f"{path} manifest.json")
            yield from _read_csv_entity(source, entity, info)
    finally:
        source.close()


def _utf8_lines(binary, where: str) -> Iterator[str]:
    """Decodes line by line, so an encoding error is reported on its own line, not a buffer later."""
    for line_number, raw in enumerate(binary, 1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ImportFormatError(
                f"{where}: not valid UTF-8 on line {line_number} ({exc.reason} at column {exc.start + 1}); "
                "re-save the file as UTF-8."
            ) from None


def _read_csv_entity(source: _CsvSource, entity: Entity, info: dict) -> Iterator[Record]:
    text_fields, json_fields = _text_fields(entity), _json_fields(entity)
    where = f"{source.path} {info.get('file')}"
    number = 0
    with source.open_binary(info.get("file", f"{entity.name}.csv")) as handle:
        try:
            reader = csv.reader(_utf8_lines(handle, where))
            header = next(reader, None)
            if header is None:
                raise ImportFormatError(f"{where}: empty file (no header row).")
            for row in reader:
                number += 1
                if len(row) != len(header):
                    raise ImportFormatError(
                        f"{where}: record {number} has {len(row)} cells, the header has {len(header)} "
                        "(malformed or truncated)."
                    )
                yield (
                    entity.name,
                    number,
                    {
                        name: _csv_value(value, name, text_fields, json_fields)
                        for name, value in zip(header, row, strict=True)
                    },
                )
        except UnicodeDecodeError as exc:
            raise ImportFormatError(
                f"{where}: not valid UTF-8 near record {number + 1} ({exc.reason}); re-save the file as UTF-8."
            ) from None
        except csv.Error as exc:
            raise ImportFormatError(f"{where}: malformed CSV near record {number + 1}: {exc}.") from None
    if info.get("rows") is not None and info["rows"] != number:
        raise ImportFormatError(f"{where}: holds {number} records, the manifest says {info['rows']} (truncated?).")


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


def read_sql(path: Path) -> Iterator[Record]:
    """Reads the INSERT statements export_data writes (not arbitrary SQL: nothing is executed)."""
    with _decode_errors(path), _open_text(path) as handle:
        text = handle.read()
    first_line = text.split("\n", 1)[0]
    try:
        _check_header(json.loads(first_line[3:]) if first_line.startswith("-- ") else None, str(path))
    except json.JSONDecodeError:
        _check_header(None, str(path))
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
        json_fields = _json_fields(entity)
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
                    value = Unparsable(value)
            record[name] = value
        numbers[entity.name] = numbers.get(entity.name, 0) + 1
        yield entity.name, numbers[entity.name], record
    if not committed or end_counts is None:
        raise ImportFormatError(f"{path}: truncated (no COMMIT / end line after {sum(numbers.values())} records).")


READERS = {"json": read_json, "jsonl": read_jsonl, "csv": read_csv, "sql": read_sql}


def read_records(fmt: str, path: Path) -> Iterator[Record]:
    if fmt not in READERS:
        raise ImportFormatError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if not path.exists():
        raise ImportFormatError(f"{path} does not exist.")
    if fmt != "csv" and path.is_dir():
        raise ImportFormatError(f"{path} is a folder; only --format csv reads a folder.")
    if fmt != "csv" and zipfile.is_zipfile(path):
        raise ImportFormatError(f"{path} is a zip archive; did you mean --format csv?")
    return READERS[fmt](path)
