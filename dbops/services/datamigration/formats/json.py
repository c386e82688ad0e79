"""json: one document `{"format": "multipult-export", "version": 1, ..., "entities": {name: [records]}}`,
written and read as a stream (memory bounded by the largest record, not the file)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from dbops.exceptions import ImportFormatError
from dbops.services.datamigration.entities import Entity
from dbops.services.datamigration.formats import base
from dbops.services.datamigration.formats.json_stream import JsonDocumentReader, JsonShapeError, JsonStreamError


class JsonWriter(base.StreamWriter):
    def __init__(self, target: Path, *, header: dict) -> None:
        super().__init__(target, header=header)
        self.handle.write(base.encode_json(self.header)[:-1] + ',"entities":{')
        self._first_entity = True

    def begin_entity(self, entity: Entity) -> None:
        super().begin_entity(entity)
        self.handle.write(("" if self._first_entity else "],") + f"\n{json.dumps(entity.name)}:[")
        self._first_entity = False

    def write(self, record: dict) -> None:
        self.handle.write(("\n" if self.counts[self.entity.name] == 0 else ",\n") + base.encode_json(record))
        self.counts[self.entity.name] += 1

    def _finish(self) -> None:
        self.handle.write(("" if self._first_entity else "]") + "}}\n")
        super()._finish()


def read_json(path: Path) -> Iterator[base.Record]:
    """Streams the records of a json export (bounded memory, see json_stream). The header is checked as
    soon as it has been read (before `entities` in files we write), else at the end: records are only
    staged until the whole file has been read, so a late refusal still writes nothing."""
    source = str(path)
    header: dict = {}
    numbers: dict[str, int] = {}
    with base.decode_errors(path), base.open_text(path) as handle:
        reader = JsonDocumentReader(handle)
        try:
            for name, record in reader.read(header):
                if not numbers and "format" in header:
                    base.check_header(header, source)
                if name not in numbers:
                    base.entity_named(name, source)
                    numbers[name] = 0
                numbers[name] += 1
                yield name, numbers[name], record
        except JsonStreamError as exc:
            hint = " (one JSON document per line is the jsonl format)" if exc.msg == "Extra data" else ""
            raise ImportFormatError(
                f"{path}: malformed or truncated JSON at line {exc.line}, column {exc.column}: {exc.msg}{hint}.",
                parameter="fmt" if hint else None,
            ) from None
        except JsonShapeError as exc:
            base.check_header(header, source)  # a file that is no export at all says so first
            raise ImportFormatError(f"{path}: {exc}.") from None
    base.check_header(header, source)
    if not reader.saw_entities:
        raise ImportFormatError(f"{path}: no 'entities' object.")
