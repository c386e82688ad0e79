"""jsonl: a header line, one `{"entity": name, "data": record}` line per record, and an `{"end": ...}` line
with the row counts (a file cut short has no end line and is rejected)."""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Iterator
from pathlib import Path

from dbops.exceptions import ImportFormatError
from dbops.services.datamigration.entities import ENTITIES, Entity
from dbops.services.datamigration.formats import base
from dbops.services.datamigration.formats.json_stream import BOM, RECORD_DECODER, DuplicateKeys


class JsonlWriter(base.StreamWriter):
    def __init__(self, target: Path, *, header: dict) -> None:
        super().__init__(target, header=header)
        self.handle.write(base.encode_json(self.header) + "\n")
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
        self.handle.write(self._prefix + base.encode_json(record) + "}\n")
        self.counts[self.entity.name] += 1

    def _finish(self) -> None:
        self.handle.write(base.encode_json({"end": True, "counts": self.counts}) + "\n")
        super()._finish()


_scan_json = json.scanner.make_scanner(RECORD_DECODER)


def _json_line(line: str):
    """json.loads(line) without its Python wrapper (the C scanner straight away): a fifth of the
    reading time of a big file; numbers read exactly, an object with a repeated key marked
    (json_stream.RECORD_DECODER). Anything unusual goes through json.loads, which gives its own error."""
    try:
        value, end = _scan_json(line, 0)
    except (StopIteration, ValueError):
        return _json_loads(line)
    if line[end:].strip(" \t\n\r"):
        return _json_loads(line)
    return value


def _json_loads(line: str):
    if line.startswith("\ufeff"):
        return json.loads(line)  # its own error for a byte-order mark
    return RECORD_DECODER.decode(line)


_DATA = '","data":'


class _QuotedFields(dict):
    """Entity name -> each of its field names in quotes, as they stand in a record's JSON text."""

    def __missing__(self, name: str) -> tuple[str, ...]:
        quoted = self[name] = tuple(f'"{field}"' for field in ENTITIES[name].field_names)
        return quoted


_QUOTED_FIELDS = _QuotedFields()


def _each_field_once(text: str, name: str) -> bool:
    """True when the record text surely names no field twice, so the server may parse it (jsonb keeps
    the last of repeated keys without a word); False sends the line through the parser, which decides.
    Exact that way round: without a \\u escape a field name (letters, digits, _) can only be written
    "name", so a second key of that name is a second "name" in the text; a value or a nested key that
    reads "name" too only costs the parse. About 3 µs a line (a count per field), less than parsing and re-encoding."""
    return "\\u" not in text and max(map(text.count, _QUOTED_FIELDS[name])) <= 1


def read_jsonl_raw(path: Path) -> Iterator[tuple[str, int, str]]:
    """As read_jsonl, but each record's data as its JSON text, unparsed where the line has the shape
    export_data writes (the server parses it: import_data's set-based path); others are parsed and
    re-encoded. The header, entity names, end line and counts are checked as read_jsonl does."""
    return read_jsonl(path, raw=True)


def read_jsonl(path: Path, *, raw: bool = False) -> Iterator[base.Record]:
    numbers: dict[str, int] = {}
    line_number = 0
    with base.decode_errors(path), base.open_text(path) as handle:
        ended = False
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if ended:
                raise ImportFormatError(f"{path}: line {line_number}: data after the end line.")
            if raw and line_number > 1 and line.startswith('{"entity":"'):
                split = line.find(_DATA, 11)
                name = line[11:split]
                body = line.rstrip("\n")
                if split > 0 and name in ENTITIES and "\\" not in name and body.endswith("}"):
                    text = body[split + len(_DATA) : -1]
                    if _each_field_once(text, name):
                        numbers[name] = numbers.get(name, 0) + 1
                        yield name, numbers[name], text
                        continue
            if line_number == 1 and line.startswith("\ufeff"):
                raise ImportFormatError(
                    f"{path}: line 1: malformed JSON: {BOM} (the file starts with a byte-order mark; "
                    "re-save it as UTF-8 without one)."
                )
            try:
                item = _json_line(line)
            except RecursionError:
                raise ImportFormatError(f"{path}: line {line_number}: {base.TOO_DEEP}.") from None
            except json.JSONDecodeError as exc:
                cut = "" if line.endswith("\n") else " (the file looks truncated)"
                if line_number == 1:
                    cut += "; one JSON document for the whole file is the json format"
                raise ImportFormatError(
                    f"{path}: line {line_number}: malformed JSON: {exc.msg}{cut}.",
                    parameter="fmt" if line_number == 1 else None,
                ) from None
            if type(item) is DuplicateKeys:
                raise ImportFormatError(f"{path}: line {line_number}: names the key {item.key!r} more than once.")
            if line_number == 1:
                base.check_header(item, str(path))
                continue
            if not isinstance(item, dict):
                raise ImportFormatError(f"{path}: line {line_number}: expected a JSON object.")
            if item.get("end") is True:
                ended = True
                counts = item.get("counts")
                if isinstance(counts, dict):  # an entity exported with no rows has no line to count
                    counts = {name: count for name, count in counts.items() if count != 0}
                if counts != numbers:
                    raise ImportFormatError(
                        f"{path}: the end line counts {item.get('counts')} records but the file holds {numbers}."
                    )
                continue
            name = item.get("entity")
            if name not in ENTITIES:  # the message (with its path) is only formatted when needed
                base.entity_named(name, f"{path}: line {line_number}")
            numbers[name] = numbers.get(name, 0) + 1
            data = item.get("data")
            if type(data) is DuplicateKeys:
                raise ImportFormatError(
                    f"{path}: line {line_number}: {name} record {numbers[name]} names the field {data.key!r} "
                    "more than once; a record gives each field once."
                )
            yield name, numbers[name], base.encode_json(data) if raw else data
        if line_number == 0:
            raise ImportFormatError(f"{path} is empty.")
        if not ended:
            raise ImportFormatError(f"{path}: truncated (no end line after {sum(numbers.values())} records).")
