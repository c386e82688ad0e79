"""csv: `manifest.json` plus one `<entity>.csv` per entity (header row = field names), in a folder or a
.zip. Empty cells are NULL for non-text columns; JSON columns hold JSON text."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from dbops.exceptions import ImportFormatError
from dbops.services.datamigration.entities import Entity
from dbops.services.datamigration.formats import base


def _csv_cell(value) -> str:
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value).lower()  # true / false
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return base.encode_json(value)
    return str(value)


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
    if value == "" and name not in text_fields:
        return None
    return value


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

    def member(self, name) -> str:
        """A file the manifest names, refused unless it is a file of this folder or archive itself."""
        plain = isinstance(name, str) and name and "/" not in name and "\\" not in name and name not in (".", "..")
        inside = plain and (self.archive is not None or (self.path / name).resolve().parent == self.path.resolve())
        if not inside:
            raise ImportFormatError(
                f"{self.path}: manifest.json names {name!r}; it may only name files inside "
                f"{'the archive' if self.archive is not None else 'its own folder'}."
            )
        return name

    def open_binary(self, name: str):
        name = self.member(name)
        try:
            if self.archive is not None:
                return self.archive.open(name)
            return open(self.path / name, "rb")  # noqa: SIM115
        except (KeyError, FileNotFoundError):
            raise ImportFormatError(f"{self.path}: {name} is missing.") from None

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def read_csv(path: Path) -> Iterator[base.Record]:
    source = _CsvSource(path)
    try:
        with source.open("manifest.json") as handle:
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


def _read_csv_entity(source: _CsvSource, entity: Entity, info: dict) -> Iterator[base.Record]:
    text_fields, json_fields = base.text_fields(entity), base.json_fields(entity)
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
        except RecursionError:
            raise ImportFormatError(f"{where}: record {number}: {base.TOO_DEEP}.") from None
    if info.get("rows") is not None and info["rows"] != number:
        raise ImportFormatError(f"{where}: holds {number} records, the manifest says {info['rows']} (truncated?).")
