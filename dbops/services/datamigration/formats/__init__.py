"""The four file formats of export_data / import_data, one module each holding its writer and its
reader (as django.core.serializers does): writers stream records out, readers stream them back as
(entity, record number, record). See each module for its layout: json, jsonl, csv, sql."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

from dbops.exceptions import DataMigrationError, ImportFormatError
from dbops.services.datamigration.formats.base import ExportWriter, Record, Unparsable, encode_json
from dbops.services.datamigration.formats.csv import CsvWriter, read_csv
from dbops.services.datamigration.formats.json import JsonWriter, read_json
from dbops.services.datamigration.formats.jsonl import JsonlWriter, read_jsonl
from dbops.services.datamigration.formats.sql import SqlWriter
from dbops.services.datamigration.formats.sql_reader import read_sql

__all__ = ["FORMATS", "READERS", "WRITERS", "Record", "Unparsable", "encode_json", "open_writer", "read_records"]

FORMATS = ("json", "jsonl", "csv", "sql")
WRITERS: dict[str, type[ExportWriter]] = {"json": JsonWriter, "jsonl": JsonlWriter, "csv": CsvWriter, "sql": SqlWriter}


def open_writer(fmt: str, target: Path, *, header: dict) -> ExportWriter:
    if fmt not in WRITERS:
        raise DataMigrationError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    return WRITERS[fmt](target, header=header)


READERS = {"json": read_json, "jsonl": read_jsonl, "csv": read_csv, "sql": read_sql}


def read_records(fmt: str, path: Path) -> Iterator[Record]:
    if fmt not in READERS:
        raise ImportFormatError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if not path.exists():
        raise ImportFormatError(f"{path} does not exist.")
    if fmt != "csv" and path.is_dir():
        raise ImportFormatError(f"{path} is a folder; of the formats only csv reads a folder.", parameter="fmt")
    if not path.is_dir():
        try:  # now, not once the run is recorded and the reader first reads
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise ImportFormatError(f"{path} cannot be read: {exc.strerror or exc}.") from None
    if fmt != "csv" and zipfile.is_zipfile(path):
        raise ImportFormatError(f"{path} is a zip archive, as the csv format writes, not {fmt}.", parameter="fmt")
    return READERS[fmt](path)
