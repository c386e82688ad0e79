"""What every export format shares: the file header, the JSON encoding of values, the writer that
only moves its file into place when complete, and the reader-side checks of header and entity."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from uuid import UUID

from django.db import models

from dbops.exceptions import ImportFormatError
from dbops.models.runs import owner_process_gone
from dbops.services.datamigration.entities import ENTITIES, Entity

# The format's name since its first files: changing it would make every file written so far unreadable.
FILE_MARKER = "multipult-export"
FILE_VERSION = 1
# Python's JSON parser gives up past about a thousand levels (its recursion limit): said in one line.
TOO_DEEP = "JSON nested too deeply (more levels than the parser's limit of about 1,000)"


class JsonNumber(Decimal):
    """A JSON number with a fraction or an exponent, as written: a float would round 12345678901234567.89
    and turn 1.10 into 1.1. Encoded back as the same number (a model's Decimal is encoded as text)."""

    __slots__ = ()

    def __repr__(self) -> str:  # messages show the number as the file writes it
        return str(self)


def _integer(text: str) -> int | JsonNumber:
    """An integer past Python's integer-parsing limit (4,300 digits; int() raises) as the exact JsonNumber:
    jsonb holds such a number, so a file or a JSON field may too."""
    return int(text) if len(text.lstrip("-")) <= sys.get_int_max_str_digits() else JsonNumber(text)


class ExactJsonDecoder(json.JSONDecoder):
    """Reads every JSON number exactly: integers as int, the others as JsonNumber. parse_float is only
    called where a number has a fraction or an exponent, so files of integers and strings read as fast
    as with the standard decoder; a value with an integer past the parsing limit is read again with a
    parse_int that takes it (a call per integer, only for such a value)."""

    def __init__(self, **options) -> None:
        super().__init__(**{**options, "parse_float": JsonNumber})

    def raw_decode(self, s: str, idx: int = 0):
        try:
            return super().raw_decode(s, idx)
        except json.JSONDecodeError:
            raise
        except ValueError as exc:
            if "integer string conversion" not in str(exc):
                raise
            return _LONG_INTEGER_DECODER.raw_decode(s, idx)


_LONG_INTEGER_DECODER = json.JSONDecoder(parse_float=JsonNumber, parse_int=_integer)
JSON_DECODER = ExactJsonDecoder()


def json_loads(text: str):
    """json.loads, numbers read exactly (JsonNumber)."""
    if text.startswith("\ufeff"):
        return json.loads(text)  # its own error for a byte-order mark
    return JSON_DECODER.decode(text)


class _ExactNumbers(Exception):
    """The value holds a JsonNumber, which the standard encoder can only write as text."""


def json_default(value):
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, JsonNumber):
        raise _ExactNumbers
    if isinstance(value, Decimal | UUID):
        return str(value)  # a Decimal as text keeps every digit; import_data reads both back
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_encode = json.JSONEncoder(default=json_default, ensure_ascii=False, separators=(",", ":")).encode


def encode_json(value) -> str:
    """Compact JSON text; a JsonNumber read from a file is written back as the number it was."""
    try:
        return _encode(value)
    except _ExactNumbers:
        return _encode_exact(value)


def _key(key) -> str:
    return key if isinstance(key, str) else _encode(key)  # as json.dumps: True is "true", 1 is "1"


def _encode_exact(value) -> str:
    if isinstance(value, JsonNumber):
        return str(value)  # e.g. 1.10 or 1E+2: valid JSON number text
    if isinstance(value, dict):
        members = (f"{_encode(_key(key))}:{_encode_exact(item)}" for key, item in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode_exact(item) for item in value) + "]"
    return _encode(value)


def text_fields(entity: Entity) -> set[str]:
    return {f.name for f in entity.fields if isinstance(f, models.CharField | models.TextField)}


def json_fields(entity: Entity) -> set[str]:
    return {f.name for f in entity.fields if isinstance(f, models.JSONField)}


FILE_MODE, FOLDER_MODE = 0o600, 0o700  # as backups: an export holds the data, for its owner's eyes only


def _owner_only(produced: Path) -> None:
    """Before the file (or CSV folder) appears under its name, only its owner may read it."""
    if produced.is_dir():
        produced.chmod(FOLDER_MODE)
        for path in produced.rglob("*"):
            path.chmod(FOLDER_MODE if path.is_dir() else FILE_MODE)
    else:
        produced.chmod(FILE_MODE)


def private_file(path: Path) -> Path:
    """Creates `path` empty and owner-only before it is opened for writing: a file of a killed export is
    no more readable than a finished one (open() would create it 0644 under the usual umask)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE))
    return path


# In each temporary folder of an export: who writes it ("host pid"), so a later export in the same folder
# removes the folder of one that was killed (its partial copy of the data) and leaves live ones alone.
OWNER_FILE = ".dbops-export-owner"


def export_leftovers_remove(folder: Path) -> list[Path]:
    """The temporary folders in `folder` of exports whose process is gone, removed."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            owner = entry / OWNER_FILE
            if not entry.name.startswith(".") or not owner.is_file():
                continue
            hostname, _, pid = owner.read_text().strip().partition(" ")
            if pid.isdigit() and owner_process_gone(hostname=hostname, pid=int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


class ExportWriter:
    """Writes into a temporary sibling of the target and moves it into place only on success, so a
    failed export leaves whatever was at the target untouched."""

    def __init__(self, target: Path, *, header: dict) -> None:
        self.target = target
        self.header = {"format": FILE_MARKER, "version": FILE_VERSION, **header}
        self.counts: dict[str, int] = {}
        self.entity: Entity | None = None
        export_leftovers_remove(target.parent)
        self._temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            (self._temp / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
        except OSError:
            shutil.rmtree(self._temp, ignore_errors=True)
            raise

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
        _owner_only(produced)
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


class StreamWriter(ExportWriter):
    def __init__(self, target: Path, *, header: dict) -> None:
        super().__init__(target, header=header)
        self.handle = open(private_file(self._temp / "out"), "w", encoding="utf-8", newline="\n")  # noqa: SIM115

    def _finish(self) -> None:
        self.handle.close()

    def _close_quietly(self) -> None:
        self.handle.close()


Record = tuple[str, int, dict]  # (entity name, record number in the file, record)


def check_header(header, source: str) -> dict:
    if not isinstance(header, dict) or header.get("format") != FILE_MARKER:
        raise ImportFormatError(f"{source} is not an export_data file (no {FILE_MARKER!r} header).")
    if header.get("version") != FILE_VERSION:
        raise ImportFormatError(f"{source}: unsupported export version {header.get('version')!r}.")
    return header


def entity_named(name, source: str) -> Entity:
    if name not in ENTITIES:
        raise ImportFormatError(f"{source}: unknown entity {name!r}; valid: {', '.join(ENTITIES)}.")
    return ENTITIES[name]


def open_text(path: Path):
    if not path.is_file():
        raise ImportFormatError(f"{path} is not a file.")
    return open(path, encoding="utf-8", newline="")  # noqa: SIM115


def decode_errors(path: Path):
    """Turns a bad byte sequence into one readable message instead of a traceback."""

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start}).") from None

    return guard()


class Unparsable(str):
    """A cell that should hold JSON but does not; validation reports it with its record number."""
