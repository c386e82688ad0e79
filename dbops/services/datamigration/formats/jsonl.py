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


_scan_json = json.scanner.make_scanner(base.JSON_DECODER)


def _json_line(line: str):
    """json.loads(line) without its Python wrapper (the C scanner straight away): a fifth of the
    reading time of a big file; numbers read exactly (base.JSON_DECODER). Anything unusual goes through
    json.loads, which gives its own error."""
    try:
        value, end = _scan_json(line, 0)
    except (StopIteration, ValueError):
        return base.json_loads(line)
    if line[end:].strip(" \t\n\r"):
        return base.json_loads(line)
    return value


_DATA = '","data":'


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
                    numbers[name] = numbers.get(name, 0) + 1
                    yield name, numbers[name], body[split + len(_DATA) : -1]
                    continue
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
            if line_number == 1:
                base.check_header(item, str(path))
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
                base.entity_named(name, f"{path}: line {line_number}")
            numbers[name] = numbers.get(name, 0) + 1
            data = item.get("data")
            yield name, numbers[name], base.encode_json(data) if raw else data
        if line_number == 0:
            raise ImportFormatError(f"{path} is empty.")
        if not ended:
            raise ImportFormatError(f"{path}: truncated (no end line after {sum(numbers.values())} records).")
