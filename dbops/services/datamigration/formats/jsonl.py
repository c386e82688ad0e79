"""jsonl: a header line, one `{"entity": name, "data": record}` line per record, and an `{"end": ...}` line
with the row counts (a file cut short has no end line and is rejected)."""

from __future__ import annotations

import json
import json.scanner
import re
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


BLOCK_BYTES = 8 << 20  # bytes read at a time by read_jsonl_blocks: memory stays flat whatever the file's size
# Bytes our writer never puts in a line that would change how the lines reach the server (COPY csv with
# \x01 as quote and \x02 as delimiter) or where they split (the text reader also ends a line at \r).
_UNUSUAL = (b"\x01", b"\x02", b"\r")


class IrregularLines(ImportFormatError):
    """A line read_jsonl_blocks does not take as it is (read_jsonl reads it, and names any problem)."""


def read_jsonl_blocks(path: Path) -> Iterator[tuple[str, int, bytes]]:
    """The record lines of a file exactly as export_data writes them, as (entity name, how many lines,
    the lines' bytes), consecutive lines of one entity at a time, with no per-line work in Python:
    the server parses them (import_data's set-based path). The header, end line and counts are checked
    as read_jsonl checks them; any other line shape (blank lines, spacing, control bytes) raises
    IrregularLines, and so does whatever read_jsonl would refuse."""
    if not path.is_file():
        raise IrregularLines(f"{path} is not a file.")
    counts: dict[str, int] = {}
    with open(path, "rb") as handle:
        try:
            base.check_header(json.loads(handle.readline()), str(path))
        except (ValueError, RecursionError, ImportFormatError):
            raise IrregularLines(f"{path}: line 1 is not a header") from None
        ended = False
        rest = b""
        while chunk := handle.read(BLOCK_BYTES):
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            chunk, rest = chunk[:cut], chunk[cut:]
            if any(byte in chunk for byte in _UNUSUAL):
                raise IrregularLines(f"{path}: unusual control bytes")
            position = 0
            while position < len(chunk):
                if ended:
                    raise IrregularLines(f"{path}: data after the end line")
                name, end = _block(chunk, position)
                if name is None:
                    _end_line(chunk[position:end], counts, path)
                    ended = True
                else:
                    lines = chunk.count(b"\n", position, end)
                    counts[name] = counts.get(name, 0) + lines
                    yield name, lines, chunk[position:end]
                position = end
        if rest or not ended:
            raise IrregularLines(f"{path}: truncated")


_PREFIX = b'{"entity":"'
_OTHER_LINE: dict[bytes, re.Pattern] = {}  # per line prefix: a line break followed by a line without it


def _block(chunk: bytes, position: int) -> tuple[str | None, int]:
    """(entity name, end) of the lines from `position` that start with one entity's prefix, or (None,
    end of the line) for a line that is no record line of that shape."""
    line_end = chunk.index(b"\n", position) + 1
    if not chunk.startswith(_PREFIX, position):
        return None, line_end
    name_end = chunk.find(b'"', position + len(_PREFIX), line_end)
    name = chunk[position + len(_PREFIX) : name_end].decode("ascii", "replace")
    prefix = chunk[position:name_end] + b'","data":'
    if name not in ENTITIES or not chunk.startswith(prefix, position):
        raise IrregularLines(f"line {chunk[position:line_end][:80]!r}")
    other = _OTHER_LINE.get(prefix)
    if other is None:
        other = _OTHER_LINE[prefix] = re.compile(b"\n(?!" + re.escape(prefix) + b")")
    found = other.search(chunk, position)  # always found: the chunk ends with a line break
    return name, found.start() + 1


def _end_line(line: bytes, counts: dict[str, int], path: Path) -> None:
    try:
        item = json.loads(line)
    except (ValueError, RecursionError):
        raise IrregularLines(f"{path}: a line that is no record line") from None
    if not isinstance(item, dict) or item.get("end") is not True or item.get("counts") != counts:
        raise IrregularLines(f"{path}: a line that is no record line, or an end line with other counts")


def read_jsonl(path: Path) -> Iterator[base.Record]:
    numbers: dict[str, int] = {}
    line_number = 0
    with base.decode_errors(path), base.open_text(path) as handle:
        ended = False
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if ended:
                raise ImportFormatError(f"{path}: line {line_number}: data after the end line.")
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
            yield name, numbers[name], data
        if line_number == 0:
            raise ImportFormatError(f"{path} is empty.")
        if not ended:
            raise ImportFormatError(f"{path}: truncated (no end line after {sum(numbers.values())} records).")
