"""csv: `manifest.json` plus one `<entity>.csv` per entity (header row = field names), in a folder or a
.zip. Empty cells are NULL for non-text columns; JSON columns hold the value's JSON text (a JSON string
with its quotes, JSON null as `null`), an empty cell being SQL NULL.

Text columns, as PostgreSQL's COPY: an empty cell is the empty string, NULL is the cell `\\N`, and a text
that is a run of backslashes then N (`\\N`, `\\\\N`…) is written with one more backslash, which the
reader takes off again. csv cannot tell a quoted empty cell from a bare one, so only a marker keeps
NULL and '' apart; a file of another tool without one reads as before."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from django.db import models

from dbops.exceptions import ImportFormatError
from dbops.services.datamigration.entities import Entity
from dbops.services.datamigration.formats import base
from dbops.services.datamigration.formats.json_stream import MAX_VALUE_CHARS

# The longest cell the reader takes, as the json reader's longest record: csv's default (131,072) is
# less than a text column may hold, and a bound keeps one cell from taking all the memory.
MAX_CELL_CHARS = MAX_VALUE_CHARS
NULL_TEXT = "\\N"  # a text column's NULL
_MARKER_LIKE = re.compile(r"\\+N")  # NULL_TEXT and the texts written with one more backslash than they hold


def _csv_cell(value) -> str:
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value).lower()  # true / false
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return base.encode_json(value)
    return str(value)


def _text_cell(value) -> str:
    if value is None:
        return NULL_TEXT
    text = _csv_cell(value)
    return "\\" + text if text.startswith("\\") and _MARKER_LIKE.fullmatch(text) else text


def _json_cell(value) -> str:
    """A JSON field's value as its JSON text: the string "5" stays a string, None is JSON null."""
    return base.encode_json(value)


def _nullable_json_cell(value) -> str:
    """The empty cell is SQL NULL (Django reads a JSON null of a nullable column as None too)."""
    return "" if value is None else base.encode_json(value)


def _cell_writer(model_field: models.Field, text_fields: set[str]):
    if model_field.name in text_fields:
        return _text_cell
    if isinstance(model_field, models.JSONField):
        return _nullable_json_cell if model_field.null else _json_cell
    return _csv_cell


def _cell_writers(entity: Entity) -> list[tuple[str, object]]:
    text_fields = base.text_fields(entity)
    return [(model_field.name, _cell_writer(model_field, text_fields)) for model_field in entity.fields]


class CsvWriter(base.ExportWriter):
    """One CSV per entity plus manifest.json, in a folder or (target ends with .zip) a zip archive."""

    def __init__(self, target: Path, *, header: dict) -> None:
        super().__init__(target, header=header)
        self.zipped = target.suffix.lower() == ".zip"
        if self.zipped:
            self.archive = zipfile.ZipFile(base.private_file(self._temp / "out"), "w", compression=zipfile.ZIP_DEFLATED)
        else:
            (self._temp / "out").mkdir(mode=base.FOLDER_MODE)
        self.fields: dict[str, list[str]] = {}
        self._handle = None

    def begin_entity(self, entity: Entity) -> None:
        super().begin_entity(entity)
        name = f"{entity.name}.csv"
        if self.zipped:
            raw = self.archive.open(name, "w", force_zip64=True)
            self._handle = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        else:
            self._handle = open(base.private_file(self._temp / "out" / name), "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._csv = csv.writer(self._handle)
        self.fields[entity.name] = entity.field_names
        self._csv.writerow(entity.field_names)
        self._cells = _cell_writers(entity)

    def write(self, record: dict) -> None:
        self._csv.writerow([cell(record.get(name)) for name, cell in self._cells])
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
        text = json.dumps(manifest, indent=2, default=base.json_default)
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


def _csv_value(value: str, name: str, text_fields: set[str], json_fields: set[str]):
    if name in json_fields:
        try:
            return base.json_loads(value) if value != "" else None
        except json.JSONDecodeError:
            return base.Unparsable(value)
    if name in text_fields:
        if value.startswith("\\") and _MARKER_LIKE.fullmatch(value):
            return None if value == NULL_TEXT else value[1:]
        return value
    return None if value == "" else value


class _CsvSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        if zipfile.is_zipfile(path):
            self.archive = zipfile.ZipFile(path)
        elif path.is_dir():
            self.archive = None
        else:
            raise ImportFormatError(
                f"{path}: the csv format needs a .zip archive or a folder written by export_data.", parameter="fmt"
            )

    def open(self, name: str):
        try:
            if self.archive is not None:
                return io.TextIOWrapper(self.archive.open(name), encoding="utf-8", newline="")
            return open(self.path / name, encoding="utf-8", newline="")  # noqa: SIM115
        except (KeyError, FileNotFoundError):
            raise ImportFormatError(f"{self.path}: {name} is missing.") from None
        except IsADirectoryError:
            raise ImportFormatError(f"{self.path}: {name} is a folder, not a file.") from None

    def member(self, name) -> str:
        """A file the manifest names, refused unless it is a file of this folder or archive itself."""
        if isinstance(name, str) and any(ord(char) < 32 or ord(char) == 127 for char in name):
            # open() refuses a NUL with a ValueError; the other control characters make no file name either
            raise ImportFormatError(f"{self.path}: manifest.json names {name!r}, which is no file name.")
        plain = isinstance(name, str) and name and "/" not in name and "\\" not in name and name not in (".", "..")
        try:
            inside = plain and (self.archive is not None or (self.path / name).resolve().parent == self.path.resolve())
        except (OSError, ValueError):  # a name too long for the file system, for one
            raise ImportFormatError(f"{self.path}: manifest.json names {name!r}, which is no file name.") from None
        if not inside and name == "manifest.json":
            raise ImportFormatError(f"{self.path}: manifest.json links out of the folder; it must be a file inside it.")
        if not inside:
            raise ImportFormatError(
                f"{self.path}: manifest.json names {name!r}; it may only name files inside "
                f"{'the archive' if self.archive is not None else 'its own folder'}."
            )
        if self.archive is not None:
            entry = self.archive.NameToInfo.get(name)
            folder = (entry is not None and entry.is_dir()) or f"{name}/" in self.archive.NameToInfo
        else:
            folder = (self.path / name).is_dir()
        if folder:
            raise ImportFormatError(f"{self.path}: manifest.json names {name!r}, which is a folder, not a CSV file.")
        return name

    def open_binary(self, name: str):
        name = self.member(name)
        try:
            if self.archive is not None:
                return self.archive.open(name)
            return open(self.path / name, "rb")  # noqa: SIM115
        except (KeyError, FileNotFoundError):
            raise ImportFormatError(f"{self.path}: {name} is missing.") from None
        except IsADirectoryError:  # made a folder since it was checked
            raise ImportFormatError(f"{self.path}: {name} is a folder, not a CSV file.") from None

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def _listed_fields(info: dict, where: str) -> list[str] | None:
    """The manifest's `fields` of an entity (None when a hand-made manifest leaves them out)."""
    fields = info.get("fields")
    if fields is None:
        return None
    if not isinstance(fields, list) or not all(isinstance(name, str) for name in fields):
        raise ImportFormatError(f"{where}: 'fields' must be a list of field names.")
    if len(set(fields)) != len(fields):
        raise ImportFormatError(f"{where}: 'fields' names {', '.join(map(repr, _repeated(fields)))} more than once.")
    return fields


def _repeated(names: list[str]) -> list[str]:
    return [name for name in dict.fromkeys(names) if names.count(name) > 1]


def read_csv(path: Path) -> Iterator[base.Record]:
    source = _CsvSource(path)
    try:
        with source.open(source.member("manifest.json")) as handle:  # a link out of the folder is refused too
            try:
                manifest = json.load(handle)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ImportFormatError(f"{path}: manifest.json is malformed: {exc}.") from None
            except RecursionError:
                raise ImportFormatError(f"{path}: manifest.json: {base.TOO_DEEP}.") from None
        base.check_header(manifest, f"{path} manifest.json")
        listed = manifest.get("entities", {})
        if not isinstance(listed, dict) or not all(isinstance(info, dict) for info in listed.values()):
            raise ImportFormatError(f"{path}: manifest.json: 'entities' must map entity names to objects.")
        for name, info in listed.items():  # every named file is checked before any is read
            base.entity_named(name, f"{path} manifest.json")
            source.member(info.get("file", f"{name}.csv"))
            _listed_fields(info, f"{path}: manifest.json: entity {name!r}")
        for name, info in listed.items():
            yield from _read_csv_entity(source, base.entity_named(name, str(path)), info)
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


def _check_header(header: list[str], listed: list[str] | None, where: str) -> None:
    """The header names each field once, and (where the manifest lists them) the manifest's fields, in
    any order: a column left out would take the field's default, a repeated one hide a value."""
    if header and header[0].startswith("\ufeff"):
        raise ImportFormatError(
            f"{where}: starts with a UTF-8 byte-order mark (BOM); re-save the file as UTF-8 without one."
        )
    if len(set(header)) != len(header):
        raise ImportFormatError(f"{where}: the header names {', '.join(map(repr, _repeated(header)))} more than once.")
    if listed is None or set(header) == set(listed):
        return
    missing, unlisted = [n for n in listed if n not in header], [n for n in header if n not in listed]
    differences = [f"{label} {', '.join(map(repr, names))}" for label, names in
                   (("lacks", missing), ("has", unlisted)) if names]  # fmt: skip
    suffix = " the manifest does not list" if unlisted else ""
    raise ImportFormatError(
        f"{where}: the header does not match the manifest's fields: it {' and '.join(differences)}{suffix}."
    )


def _allow_long_cells() -> None:
    """csv's field limit is one for the whole process: raised to ours, never lowered (another reader of
    the process may have raised it further), so no other user loses a cell it could read before."""
    if csv.field_size_limit() < MAX_CELL_CHARS:
        csv.field_size_limit(MAX_CELL_CHARS)


def _read_csv_entity(source: _CsvSource, entity: Entity, info: dict) -> Iterator[base.Record]:
    text_fields, json_fields = base.text_fields(entity), base.json_fields(entity)
    where = f"{source.path} {info.get('file', f'{entity.name}.csv')}"
    listed = _listed_fields(info, where)
    number = 0
    _allow_long_cells()
    with source.open_binary(info.get("file", f"{entity.name}.csv")) as handle:
        try:
            reader = csv.reader(_utf8_lines(handle, where))
            header = next(reader, None)
            if header is None:
                raise ImportFormatError(f"{where}: empty file (no header row).")
            _check_header(header, listed, where)
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
            if "field limit" in str(exc):
                raise ImportFormatError(
                    f"{where}: record {number + 1} has a cell longer than {MAX_CELL_CHARS:,} characters, "
                    "the most a CSV cell may hold here."
                ) from None
            raise ImportFormatError(f"{where}: malformed CSV near record {number + 1}: {exc}.") from None
        except RecursionError:
            raise ImportFormatError(f"{where}: record {number}: {base.TOO_DEEP}.") from None
    if info.get("rows") is not None and info["rows"] != number:
        raise ImportFormatError(f"{where}: holds {number} records, the manifest says {info['rows']} (truncated?).")
