"""Reads one big JSON document `{..., "entities": {name: [record, ...], ...}}` record by record.

`json.load` would hold the whole file (and every record as a Python object) in memory; this keeps a
window of about one chunk plus the record being parsed. Each value is parsed by the standard
library's own decoder (`raw_decode`), so the accepted syntax and the error messages are json's.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any, TextIO

from dbops.services.datamigration.formats import base

CHUNK_CHARS = 1 << 20
MAX_VALUE_CHARS = 64 << 20  # a single record (or header value) larger than this is refused
_WHITESPACE = " \t\n\r"
_CUT_MARGIN = 16  # a literal or number cut by the window's end is reported within this many characters of it
TOO_DEEP = "Nested too deeply (more levels than the parser's limit of about 1,000)"
BOM = "Unexpected UTF-8 BOM"  # json's own words, so json and jsonl name it alike


class DuplicateKeys(dict):
    """A JSON object that names a key more than once, holding the last value of each (as json and jsonb
    do); `key` is the first repeated one. A record shaped so is refused: which of its values is meant?"""

    __slots__ = ("key",)


def _object(pairs: list[tuple[str, Any]]) -> dict:
    """The decoder's object_pairs_hook: a plain dict unless a key is repeated (the one comparison of
    lengths is all a well-formed object pays; the standard decoder drops repeats without a trace)."""
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    marked = DuplicateKeys(found)
    marked.key = next(key for key, times in Counter(key for key, _value in pairs).items() if times > 1)
    return marked


class _RecordDecoder(base.ExactJsonDecoder):
    """base.JSON_DECODER (numbers read exactly) that also marks objects with a repeated key."""

    def __init__(self) -> None:
        super().__init__(object_pairs_hook=_object)

    def raw_decode(self, s: str, idx: int = 0):
        try:
            return json.JSONDecoder.raw_decode(self, s, idx)
        except json.JSONDecodeError:
            raise
        except ValueError as exc:  # an integer past Python's parsing limit, as base.ExactJsonDecoder
            if "integer string conversion" not in str(exc):
                raise
            return _LONG_INTEGER_DECODER.raw_decode(s, idx)


_LONG_INTEGER_DECODER = json.JSONDecoder(
    parse_float=base.JsonNumber,
    parse_int=base._integer,  # read as base's own decoder reads them
    object_pairs_hook=_object,
)
RECORD_DECODER = _RecordDecoder()
_DECODER = RECORD_DECODER


class JsonStreamError(ValueError):
    """Malformed, truncated or oversized input; `line` and `column` are 1-based, like JSONDecodeError's."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} at line {line}, column {column}")
        self.msg, self.line, self.column = message, line, column


class JsonShapeError(ValueError):
    """Valid JSON, but not shaped like an export (entities not an object of lists)."""


class JsonDocumentReader:
    """Walks the top-level object: header values (small) are returned whole, the `entities` object is
    streamed as (entity name, record) pairs."""

    def __init__(self, handle: TextIO, *, chunk_chars: int = CHUNK_CHARS) -> None:
        self._handle, self._chunk_chars = handle, chunk_chars
        self._buffer, self._pos, self._eof = "", 0, False
        self._lines_before, self._line_start = 0, 0  # newlines in text already dropped from the buffer
        self.largest_window = 0  # the most characters held at once (for the memory-bound test)
        self.saw_entities = False

    # -- the document ---------------------------------------------------------------------------------
    def read(self, header: dict[str, Any]) -> Iterator[tuple[str, dict]]:
        """Yields (entity, record) in file order; fills `header` with the other top-level members."""
        if self._peek() == "\ufeff":
            self._fail(f"{BOM} (the file starts with a byte-order mark; re-save it as UTF-8 without one)")
        self._expect("{")
        if self._peek() == "}":
            self._pos += 1
        else:
            while True:
                key = self._value()
                if not isinstance(key, str):
                    self._fail("Expecting property name enclosed in double quotes")
                self._expect(":")
                if key == "entities":
                    yield from self._entities()
                else:
                    header[key] = self._value()
                if self._next_of(",}") == "}":
                    break
        if self._peek() != "":
            self._fail("Extra data")

    def _entities(self) -> Iterator[tuple[str, dict]]:
        self.saw_entities = True
        if self._peek() == "":
            self._fail("Unexpected end of data")
        if self._peek() != "{":
            raise JsonShapeError("'entities' is not an object")
        self._pos += 1
        if self._peek() == "}":
            self._pos += 1
            return
        while True:
            name = self._value()
            if not isinstance(name, str):
                self._fail("Expecting property name enclosed in double quotes")
            self._expect(":")
            if self._peek() == "":
                self._fail("Unexpected end of data")
            if self._peek() != "[":
                raise JsonShapeError(f"entities.{name} is not a list")
            self._pos += 1
            if self._peek() == "]":
                self._pos += 1
            else:
                index = 0
                while True:
                    record = self._value()
                    index += 1
                    if type(record) is DuplicateKeys:
                        line, _column = self._where()
                        raise JsonShapeError(
                            f"entities.{name} record {index} (ending on line {line}) names the key {record.key!r} "
                            "more than once; a record gives each field once"
                        )
                    yield name, record
                    if self._next_of(",]") == "]":
                        break
            if self._next_of(",}") == "}":
                return

    # -- tokens ---------------------------------------------------------------------------------------
    def _value(self) -> Any:
        """The next JSON value, reading more input as long as it may only be cut by the window's end."""
        self._peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except RecursionError:
                self._fail(TOO_DEEP)
            except json.JSONDecodeError as exc:
                # Only an error at the window's end may be the input being cut there; anything else is
                # malformed whatever follows, and is reported without reading further.
                cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(self._buffer) - _CUT_MARGIN
                if not cut or not self._fill():
                    self._fail(exc.msg, exc.pos)
                self._check_size()
                continue
            if end == len(self._buffer) and not self._eof and self._fill():  # a number may go on
                continue
            self._pos = end
            return value

    def _peek(self) -> str:
        """The next non-whitespace character ("" at the end of the input), without consuming it."""
        while True:
            while self._pos < len(self._buffer) and self._buffer[self._pos] in _WHITESPACE:
                self._pos += 1
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._fill():
                return ""

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            self._fail(f"Expecting {char!r}" if self._peek() else "Unexpected end of data")
        self._pos += 1

    def _next_of(self, chars: str) -> str:
        found = self._peek()
        if found == "" or found not in chars:
            what = " or ".join(repr(c) for c in chars)
            self._fail(f"Expecting {what} delimiter" if found else "Unexpected end of data")
        self._pos += 1
        return found

    # -- the window -----------------------------------------------------------------------------------
    def _fill(self) -> bool:
        """Drops what was consumed and appends a chunk; False at the end of the input."""
        if self._eof:
            return False
        more = self._handle.read(self._chunk_chars)
        if not more:
            self._eof = True
            return False
        consumed = self._buffer[: self._pos]
        newlines = consumed.count("\n")
        if newlines:
            self._lines_before += newlines
            self._line_start = self._pos - (len(consumed) - consumed.rfind("\n") - 1)
        self._line_start -= self._pos
        self._buffer = self._buffer[self._pos :] + more
        self._pos = 0
        self.largest_window = max(self.largest_window, len(self._buffer))
        return True

    def _check_size(self) -> None:
        if len(self._buffer) - self._pos > MAX_VALUE_CHARS:
            self._fail(f"A value longer than {MAX_VALUE_CHARS:,} characters")

    def _where(self, pos: int | None = None) -> tuple[int, int]:
        pos = self._pos if pos is None else pos
        before = self._buffer[:pos]
        newlines = before.count("\n")
        line = self._lines_before + newlines + 1
        column = pos - before.rfind("\n") if newlines else pos - self._line_start + 1
        return line, column

    def _fail(self, message: str, pos: int | None = None):
        raise JsonStreamError(message, *self._where(pos))
