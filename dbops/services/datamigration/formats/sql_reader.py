"""Reads SQL `INSERT ... VALUES` statements into records, never executing anything: the files export_data
writes, and any such INSERT PostgreSQL's shell would accept for the entities' tables (a dump tool's
`--inserts` / `--column-inserts` output, hand-written files), read by PostgreSQL's own lexical rules:

- keywords in any case; unquoted names (folded to lower case) or "quoted" ones; a table unqualified or in
  its own schema (`public.`): another schema's table is another table and is refused;
- a column list or none (the table's columns in order, trailing ones may be left out), several rows per
  statement, `OVERRIDING SYSTEM VALUE` / `OVERRIDING USER VALUE` (the id is then left to the sequence);
- literals: numbers, NULL, TRUE/FALSE, `DEFAULT` or an omitted column (the field is left out, so the
  import's default applies), '...' strings (also N'...'), adjacent ones separated by a newline joined,
  E'...' with PostgreSQL's escapes (\\ooo and \\xhh are bytes, the result must be valid UTF-8), U&'...'
  with UESCAPE, $$...$$ and $tag$...$tag$; casts (`'{}'::jsonb`) and typed literals (`TIMESTAMP '...'`) that
  leave the value as it is for its column (a cast that could change it, `::varchar(3)` or `::date` into a
  timestamp, is refused); N'...' is `bpchar`, whose trailing spaces a text column drops;
- comments anywhere between tokens (`--` and nested `/* */`), empty statements, a dump's `\\restrict` lines.

Session statements (`SET`, `RESET`, a dump's `SELECT set_config(...)` / `setval(...)`) are read: those
that leave the values as this reader reads them (a dump's own) are accepted, any other (another
standard_conforming_strings, time zone, encoding, date style, an unknown setting) is refused, and
search_path is followed, for the table an unqualified name finds. BEGIN/COMMIT are accepted; ROLLBACK,
ABORT and a BEGIN never committed are refused (the shell would leave none of the rows). Any other
statement (UPDATE, COPY, another SELECT, a meta-command, an INSERT with ON CONFLICT...) is refused with
its line, as is an invalid literal (one that PostgreSQL would refuse too), and so is a file with no INSERT.

A file with export_data's header must end with its COMMIT and `-- end {counts}` line, and the counts must be
the rows read (a cut or edited file is found); in any file other comments are only comments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections, router

from dbops.engines import get_connector
from dbops.exceptions import ImportFormatError
from dbops.services.datamigration.entities import ENTITIES, Entity
from dbops.services.datamigration.formats import base

_SPACE = re.compile(r"[ \t\n\r\f\v]*")  # PostgreSQL's whitespace (Python's \s also takes non-ASCII spaces)
_NESTING = re.compile(r"/\*|\*/")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$\u0080-\U0010ffff]")
_IDENT = re.compile(r'"((?:[^"]|"")*)"|([A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*)')
_WORD = re.compile(r"[A-Za-z_]+")
# The fast path for the common value (what export_data writes): plain literal, then `,` or `)`.
_SIMPLE_VALUE = re.compile(
    r"[ \t\n\r]*(?:'(?P<string>[^']*(?:''[^']*)*)'|(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<word>NULL|TRUE|FALSE|DEFAULT)\b)[ \t\n\r]*(?P<end>[,)])",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z0-9_.])")
_PLAIN_BODY = re.compile(r"'([^']*(?:''[^']*)*)'")
_ESCAPE_BODY = re.compile(r"'([^'\\]*(?:(?:\\.|'')[^'\\]*)*)'", re.DOTALL)
# Adjacent literals are one only when the space between them holds a newline (SQL's rule; `--` comments may
# sit in it, /* */ ones may not).
_CONTINUATION = re.compile(r"[ \t\f]*(?:--[^\n\r]*)?[\n\r](?:[ \t\n\r\f\v]|--[^\n\r]*[\n\r])*'")
_DOLLAR = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
_TYPED_LITERAL = re.compile(
    r"(?:TIMESTAMPTZ|TIMESTAMP|TIMETZ|TIME|DATE|INTERVAL|TEXT|VARCHAR|CHARACTER\s+VARYING|JSONB|JSON|UUID|INET"
    r"|CIDR|BOOLEAN|BOOL|NUMERIC|DECIMAL|INTEGER|INT[248]?|BIGINT|SMALLINT|REAL|FLOAT[48]|DOUBLE\s+PRECISION)"
    r"(?:\s+WITH(?:OUT)?\s+TIME\s+ZONE)?[ \t\n\r\f\v]*(?=[EeNn]?')",
    re.IGNORECASE,
)
_CAST_TYPE = re.compile(
    r"(?:(?:pg_catalog|public)\s*\.\s*)?(?:\"(?:[^\"]|\"\")+\"|DOUBLE\s+PRECISION|CHARACTER\s+VARYING|BIT\s+VARYING"
    r"|(?:TIMESTAMP|TIME)(?:\s*\(\s*\d+\s*\))?\s+WITH(?:OUT)?\s+TIME\s+ZONE|[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:\s*\(\s*\d+(?:\s*,\s*\d+)?\s*\))?(?:\s*\[\s*\d*\s*\])*",
    re.IGNORECASE,
)
_E_ESCAPE = re.compile(
    r"''|\\(?:(?P<octal>[0-7]{1,3})|x(?P<hex>[0-9A-Fa-f]{1,2})|u(?P<u4>[0-9A-Fa-f]{4})|U(?P<u8>[0-9A-Fa-f]{8})"
    r"|(?P<bad>[uU])|(?P<char>.))",
    re.DOTALL,
)
_E_SINGLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_TRANSACTION = frozenset({"BEGIN", "START", "COMMIT", "END", "SAVEPOINT", "RELEASE"})
_SESSION = frozenset({"SET", "RESET", "SELECT"})
_UNDOING = frozenset({"ROLLBACK", "ABORT"})
# Recent dumps bracket their output in the shell's \restrict / \unrestrict (they stop other meta-commands).
_META_COMMAND = re.compile(r"\\(?:un)?restrict\b[^\n]*(?:\n|\Z)")
_END_LINE = re.compile(r"-- end (\{[^\n]*\})[ \t\r]*(?:\n|\Z)")  # as SqlWriter writes it, on a line of its own
# An INSERT's head with nothing but names and spaces in it: the same text is the same head (export_data and
# dumps repeat one per row), so it is parsed once per file.
_PLAIN_HEAD = re.compile(r"INSERT\s+INTO\s[^;'$/()-]*?(?:\([^;'$/()-]*\)\s*)?VALUES\s*\(", re.IGNORECASE)
_STATEMENT_TOKENS = re.compile(r"""[;'"$\\]|--|/\*""")
_MARK = re.compile(r"[=,.()]")
# Settings that change nothing in how a value is read, whatever their value (a dump writes most of them).
_HARMLESS_SETTINGS = frozenset(
    {
        "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "idle_session_timeout",
        "transaction_timeout", "client_min_messages", "check_function_bodies", "xmloption", "row_security",
        "default_tablespace", "default_table_access_method", "default_with_oids", "extra_float_digits",
        "application_name", "escape_string_warning", "synchronous_commit", "quote_all_identifiers",
        "default_transaction_read_only",
    }
)  # fmt: skip
_UTC = frozenset({"utc", "etc/utc", "gmt", "etc/gmt", "universal", "etc/universal", "zulu", "etc/zulu"})
# Settings that change how values are read: (whether the values leave them read as here, the standard, what else).
_READING_SETTINGS = {
    "standard_conforming_strings": (
        lambda values: values in (["on"], ["true"], ["yes"], ["1"]),
        "on",
        "backslashes in '...' would be escapes",
    ),
    "client_encoding": (
        lambda values: len(values) == 1 and re.sub(r"[^0-9a-z]", "", values[0]) in ("utf8", "unicode"),
        "UTF8",
        "the file's bytes would be decoded in another encoding",
    ),
    "timezone": (
        lambda values: len(values) == 1 and values[0] in _UTC,
        "UTC",
        "times without an offset would be in that zone",
    ),
    "datestyle": (
        lambda values: set(re.split(r"[\s,]+", ",".join(values))) - {""} <= {"iso", "mdy"},
        "ISO, MDY",
        "dates would be read in another order",
    ),
    "intervalstyle": (lambda values: values == ["postgres"], "postgres", "intervals would be read otherwise"),
}
_TYPE_FAMILIES = {
    "text": "text", "varchar": "text", "character varying": "text", "bpchar": "text",
    "smallint": "integer", "int2": "integer", "integer": "integer", "int": "integer", "int4": "integer",
    "bigint": "integer", "int8": "integer", "numeric": "numeric", "decimal": "numeric",
    "double precision": "double precision", "float8": "double precision", "float": "double precision",
    "boolean": "boolean", "bool": "boolean", "timestamp with time zone": "timestamp with time zone",
    "timestamptz": "timestamp with time zone", "date": "date", "time": "time", "time without time zone": "time",
    "interval": "interval", "uuid": "uuid", "inet": "inet", "json": "jsonb", "jsonb": "jsonb", "bytea": "bytea",
}  # fmt: skip
_INTEGER_LIMITS = {"smallint": 2**15, "int2": 2**15, "bigint": 2**63, "int8": 2**63}  # the others: 2**31
_FIELD_FAMILIES = {
    "CharField": "text", "TextField": "text", "EmailField": "text", "SlugField": "text", "URLField": "text",
    "FileField": "text", "ImageField": "text", "FilePathField": "text", "AutoField": "integer",
    "BigAutoField": "integer", "SmallAutoField": "integer", "IntegerField": "integer", "BigIntegerField": "integer",
    "SmallIntegerField": "integer", "PositiveIntegerField": "integer", "PositiveBigIntegerField": "integer",
    "PositiveSmallIntegerField": "integer", "DecimalField": "numeric", "FloatField": "double precision",
    "BooleanField": "boolean", "DateTimeField": "timestamp with time zone", "DateField": "date", "TimeField": "time",
    "DurationField": "interval", "UUIDField": "uuid", "GenericIPAddressField": "inet", "JSONField": "jsonb",
    "BinaryField": "bytea",
}  # fmt: skip
# The kinds of literal a cast to a family takes unchanged (a number cast to text or a date is refused).
_CAST_KINDS = {"integer": {"number", "string"}, "numeric": {"number", "string"}, "boolean": {"string", "boolean"}}
_CAST_KINDS["double precision"] = _CAST_KINDS["numeric"]


class _Malformed(Exception):
    """A syntax problem at a position of the text; read_sql names the file and the line."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message, self.position = message, position


class _Default:
    """`DEFAULT` in a VALUES list."""


class _Cast:
    """A literal with casts (a typed literal, N'...' included), checked against its column by _record."""

    __slots__ = ("value", "kind", "casts", "position")

    def __init__(self, value: object, kind: str, casts: list[str], position: int) -> None:
        self.value, self.kind, self.casts, self.position = value, kind, casts, position

    def resolved(self, field, column: str) -> object:
        """The value the column would hold, if every cast leaves it as the uncast literal would be stored."""
        while field is not None and field.get_internal_type() in ("ForeignKey", "OneToOneField"):
            field = field.target_field
        family = _FIELD_FAMILIES.get(field.get_internal_type()) if field is not None else None
        value, kind = self.value, self.kind
        for written in self.casts:
            name = re.sub(r"\s+", " ", re.sub(r"^pg_catalog\s*\.\s*", "", written, flags=re.IGNORECASE))
            name = name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()
            if "(" in name or "[" in name:
                raise _Malformed(
                    f"the cast ::{written} is not read: a length, precision or array may change the value",
                    self.position,
                )
            if family is None or _TYPE_FAMILIES.get(name) != family:
                raise _Malformed(
                    f"the cast ::{written} into column {column} ({family or 'of another type'}) is not read: it may "
                    "change the value, or the database would refuse it",
                    self.position,
                )
            if value is None:
                continue
            if kind not in _CAST_KINDS.get(family, {"string"}):
                raise _Malformed(
                    f"the cast ::{written} of a {kind} is not read: it may change the value", self.position
                )
            if name == "bpchar":
                value = value.rstrip(" ")  # a text column drops a bpchar's trailing spaces
            elif family == "integer":
                value, kind = _integer_cast(value, kind, written, name, self.position), "integer"
        return value


def _integer_cast(value: object, kind: str, written: str, name: str, position: int) -> int:
    """An integer cast that changes nothing: an integer in the type's range (-1::int is -(1::int))."""
    if isinstance(value, str):
        if kind != "string" or not re.fullmatch(r"[+-]?\d+", value):
            raise _Malformed(f"::{written} of a number that is no integer is not read: it would round it", position)
        value = int(value)
    limit = _INTEGER_LIMITS.get(name, 2**31)
    if not (abs(value) < limit if kind == "number" else -limit <= value < limit):
        sign = " (a sign applies after the cast)" if kind == "number" and value < 0 else ""
        raise _Malformed(f"{abs(value) if sign else value} is out of range for ::{written}{sign}", position)
    return value


def _skip(text: str, position: int) -> int:
    """Past whitespace and comments: `--` to the line's end, `/* */` nested as PostgreSQL nests them."""
    while True:
        position = _SPACE.match(text, position).end()
        if text.startswith("--", position):
            line_end = text.find("\n", position)
            position = len(text) if line_end < 0 else line_end + 1
        elif text.startswith("/*", position):
            position = _comment_end(text, position)
        else:
            return position


def _comment_end(text: str, start: int) -> int:
    depth = 0
    for mark in _NESTING.finditer(text, start):
        depth += 1 if mark.group(0) == "/*" else -1
        if depth == 0:
            return mark.end()
    raise _Malformed("unterminated /* comment", start)


def _keyword(text: str, position: int, word: str) -> int | None:
    """The position after `word` (any case) if it comes next, else None."""
    position = _skip(text, position)
    end = position + len(word)
    if text[position:end].upper() == word and not _IDENT_CHAR.match(text, end):
        return end
    return None


def _identifier(text: str, position: int) -> tuple[str, int]:
    position = _skip(text, position)
    name = _IDENT.match(text, position)
    if name is None:
        raise _Malformed("malformed INSERT statement (a name expected)", position)
    if name.group(1) is not None:
        return name.group(1).replace('""', '"'), name.end()
    return name.group(2).lower(), name.end()  # unquoted names fold to lower case


def _segments(text: str, position: int, body: re.Pattern) -> tuple[list[str], int]:
    """The bodies of a quoted literal and of those continuing it (separated by a newline)."""
    segments = []
    while True:
        quoted = body.match(text, position)
        if quoted is None:
            raise _Malformed("unterminated quoted string", position)
        segments.append(quoted.group(1))
        continuation = _CONTINUATION.match(text, quoted.end())
        if continuation is None:
            return segments, quoted.end()
        position = continuation.end() - 1


def _code_point(code: int, high: int | None, position: int) -> tuple[int | None, int | None]:
    """(a complete code point or None, the high surrogate still waiting for its low half)."""
    if high is not None:
        if not 0xDC00 <= code <= 0xDFFF:
            raise _Malformed("invalid Unicode surrogate pair", position)
        return 0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00), None
    if 0xD800 <= code <= 0xDBFF:
        return None, code
    if 0xDC00 <= code <= 0xDFFF:
        raise _Malformed("invalid Unicode surrogate pair", position)
    if code == 0 or code > 0x10FFFF:
        raise _Malformed(f"invalid Unicode escape value {code:#x}", position)
    return code, None


def _escape_bytes(segment: str, out: bytearray, position: int) -> None:
    """Appends an E'...' body as PostgreSQL reads it: \\ooo and \\xhh are bytes, \\u \\U code points."""
    last, high = 0, None
    for escape in _E_ESCAPE.finditer(segment):
        if high is not None and escape.start() != last:  # the low half must follow at once
            raise _Malformed("invalid Unicode surrogate pair", position)
        out += segment[last : escape.start()].encode()
        last = escape.end()
        kind = escape.lastgroup
        if kind is None:  # ''
            out += b"'"
        elif kind == "octal":
            out.append(int(escape.group("octal"), 8) & 0xFF)  # PostgreSQL keeps the low byte: \400 is \0
        elif kind == "hex":
            out.append(int(escape.group("hex"), 16))
        elif kind in ("u4", "u8"):
            code, high = _code_point(int(escape.group(kind), 16), high, position)
            if code is not None:
                out += chr(code).encode()
            continue
        elif kind == "bad":
            raise _Malformed("invalid Unicode escape (\\u takes 4 hexadecimal digits, \\U 8)", position)
        else:
            out += _E_SINGLE.get(escape.group("char"), escape.group("char")).encode()
        if high is not None:
            raise _Malformed("invalid Unicode surrogate pair", position)
    if high is not None:
        raise _Malformed("invalid Unicode surrogate pair", position)
    out += segment[last:].encode()


def _escape_string(segments: list[str], position: int) -> str:
    if not any("\\" in segment for segment in segments):
        return "".join(segments).replace("''", "'")
    data = bytearray()
    for segment in segments:  # one byte string: a UTF-8 sequence may be split across escapes or segments
        _escape_bytes(segment, data, position)
    try:
        value = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = " ".join(f"0x{byte:02x}" for byte in data[exc.start : exc.end])
        raise _Malformed(f'invalid byte sequence for encoding "UTF8": {bad}', position) from None
    if "\x00" in value:
        raise _Malformed('invalid byte sequence for encoding "UTF8": 0x00', position)
    return value


def _unicode_string(body: str, escape: str, position: int) -> str:
    """A U&'...' body: escape+4 hex digits or escape+'+'+6 hex digits is a code point, escape twice itself."""
    out, index, high = [], 0, None
    while True:
        found = body.find(escape, index)
        if found < 0:
            if high is not None:
                raise _Malformed("invalid Unicode surrogate pair", position)
            out.append(body[index:])
            return "".join(out)
        if high is not None and found != index:
            raise _Malformed("invalid Unicode surrogate pair", position)
        out.append(body[index:found])
        after = found + 1
        if body.startswith(escape, after):
            if high is not None:
                raise _Malformed("invalid Unicode surrogate pair", position)
            out.append(escape)
            index = after + 1
            continue
        digits = re.match(r"[0-9A-Fa-f]{4}|\+[0-9A-Fa-f]{6}", body[after : after + 7])
        if digits is None:
            raise _Malformed("invalid Unicode escape (the escape takes 4 hexadecimal digits, or + and 6)", position)
        code, high = _code_point(int(digits.group(0).lstrip("+"), 16), high, position)
        if code is not None:
            out.append(chr(code))
        index = after + len(digits.group(0))


def _string(text: str, position: int) -> tuple[str, int] | None:
    """A string literal of any kind at the position, with the position after it; None if there is none."""
    lead = text[position : position + 3].upper()
    if lead.startswith("'") or lead.startswith("N'"):
        segments, end = _segments(text, position + (lead[0] == "N"), _PLAIN_BODY)
        return "".join(segments).replace("''", "'"), end
    if lead.startswith("E'"):
        segments, end = _segments(text, position + 1, _ESCAPE_BODY)
        return _escape_string(segments, position), end
    if lead == "U&'":
        segments, end = _segments(text, position + 2, _PLAIN_BODY)
        escape, after = "\\", _keyword(text, end, "UESCAPE")
        if after is not None:
            after = _skip(text, after)
            quoted = _PLAIN_BODY.match(text, after)
            escape = quoted.group(1).replace("''", "'") if quoted else ""
            if len(escape) != 1 or escape in "0123456789abcdefABCDEF+'\" \t\n\r\f\v":
                raise _Malformed("invalid Unicode escape character after UESCAPE", after)
            end = quoted.end()
        return _unicode_string("".join(segments).replace("''", "'"), escape, position), end
    dollar = _DOLLAR.match(text, position)
    if dollar is not None:
        close = text.find(dollar.group(0), dollar.end())
        if close < 0:
            raise _Malformed("unterminated dollar-quoted string", position)
        return text[dollar.end() : close], close + len(dollar.group(0))
    return None


def _value(text: str, position: int) -> tuple[object, int]:
    """One literal of a VALUES list (casts included), with the position after it; DEFAULT as _Default."""
    start = position = _skip(text, position)
    typed = _TYPED_LITERAL.match(text, position)
    casts = [" ".join(typed.group(0).split()).lower()] if typed else []
    string = _string(text, typed.end() if typed else position)
    if string is not None:
        if text[typed.end() if typed else position] in "Nn":
            casts.insert(0, "bpchar")  # N'...' is a bpchar
        (value, position), kind = string, "string"
    elif number := _NUMBER.match(text, position):
        position, digits, kind = number.end(), number.group(0), "number"
        value = int(digits) if digits.lstrip("+-").isdigit() else digits  # others as text: every digit kept
    else:
        word = _WORD.match(text, position)
        value = {"NULL": None, "TRUE": True, "FALSE": False, "DEFAULT": _Default}.get(
            word.group(0).upper() if word else "", _Malformed
        )
        if value is _Malformed or _IDENT_CHAR.match(text, word.end()) or text.startswith("(", _skip(text, word.end())):
            raise _Malformed("malformed or truncated VALUES list (only literals are read)", position)
        position, kind = word.end(), "boolean"
    while True:
        after = _skip(text, position)
        if not text.startswith("::", after):
            break
        cast_type = _CAST_TYPE.match(text, _skip(text, after + 2))
        if cast_type is None:
            raise _Malformed("malformed cast in a VALUES list", after)
        if value is _Default:
            raise _Malformed("DEFAULT takes no cast", after)
        casts.append(cast_type.group(0))
        position = cast_type.end()
    return (_Cast(value, kind, casts, start) if casts else value), position


def _header(text: str, path: Path) -> bool:
    """Whether the file is export_data's own (then it must be complete); a wrong header is refused."""
    first_line = text.split("\n", 1)[0]
    if not first_line.startswith("-- {"):
        return False
    try:
        header = json.loads(first_line[3:])
    except json.JSONDecodeError:
        return False
    base.check_header(header, str(path))
    return True


def _end_counts(comment: re.Match | None) -> dict | None:
    """The counts of an export's end line; None for any other comment."""
    if comment is None:
        return None
    try:
        counts = json.loads(comment.group(1))
    except json.JSONDecodeError:
        return None
    return counts if isinstance(counts, dict) else None


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1  # only for a message: counting as we go would cost every read


def read_sql(path: Path) -> Iterator[base.Record]:
    """The rows of every INSERT statement of the file, as records of their tables' entities."""
    with base.decode_errors(path), base.open_text(path) as handle:
        text = handle.read()
    own_file = _header(text, path)
    try:
        yield from _read(text, path, own_file)
    except _Malformed as problem:
        raise ImportFormatError(f"{path}: line {_line(text, problem.position)}: {problem.message}.") from None


def _read(text: str, path: Path, own_file: bool) -> Iterator[base.Record]:
    numbers: dict[str, int] = {}
    tables, heads, session = _Tables(), {}, _Session()
    position, committed, end_counts, statements, open_transaction = 0, False, None, 0, None
    while True:
        position, counts = _between_statements(text, position, own_file)
        end_counts = counts if counts is not None else end_counts
        if position >= len(text):
            break
        if text[position] == ";":  # an empty statement
            position += 1
            continue
        word = _WORD.match(text, position)
        keyword = word.group(0).upper() if word and not _IDENT_CHAR.match(text, word.end()) else ""
        if text.startswith("\\", position):
            command = re.match(r"\\[A-Za-z!?]*", text[position:]).group(0)
            reason = "it changes the encoding the rest is read in" if command == "\\encoding" else "a shell runs it"
            raise _Malformed(f"the meta-command {command} is not read: {reason}", position)
        if keyword != "INSERT":
            if keyword in _TRANSACTION:
                committed = committed or keyword in ("COMMIT", "END")
                if keyword in ("BEGIN", "START", "COMMIT", "END"):
                    open_transaction = position if keyword in ("BEGIN", "START") else None
                position = _statement_end(text, position)
                continue
            if keyword in _SESSION:
                position = session.statement(text, position, keyword)
                continue
            if keyword in _UNDOING:
                raise _Malformed(f"{keyword} is not read: a database shell would undo the rows before it", position)
            if not own_file and not statements:
                raise ImportFormatError(
                    f"{path} is not an export_data file (no {base.FILE_MARKER!r} header) nor SQL INSERT statements "
                    f"(line {_line(text, position)} starts with {text[position : position + 20]!r})."
                )
            found = keyword or repr(text[position : position + 20])
            hint = " (dump the data as INSERT statements: the --inserts option)" if keyword == "COPY" else ""
            raise _Malformed(f"only INSERT statements are read, found {found}{hint}", position)
        if end_counts is not None:
            raise _Malformed("an INSERT after the end line (the file looks edited)", position)
        statements += 1
        plain_head = _PLAIN_HEAD.match(text, position)
        head = heads.get(plain_head.group(0)) if plain_head else None
        if head is None:
            *head, position = _insert_head(text, word.end(), tables)
            if plain_head and plain_head.end() == position:
                heads[plain_head.group(0)] = head
        else:
            position = plain_head.end()
        entity, columns, listed, drop_identity, qualified = head
        if not qualified and session.search_path is not None:
            session.check_unqualified(entity, tables, word.start())
        width = None
        while True:
            row_start = position
            values, position = _row_values(text, position)
            if width is not None and len(values) != width:
                raise _Malformed("VALUES lists must all be the same length", row_start)
            width = len(values)
            record = _record(entity, columns, listed, values, drop_identity, row_start)
            numbers[entity.name] = numbers.get(entity.name, 0) + 1
            yield entity.name, numbers[entity.name], record
            position = _skip(text, position)
            if text.startswith(",", position):
                position = _skip(text, position + 1)
                if not text.startswith("(", position):
                    raise _Malformed("malformed INSERT statement (a parenthesized row expected)", position)
                position += 1
                continue
            if text.startswith(";", position) or position >= len(text):  # the shell runs a last unterminated one
                position += 1
                break
            clause = re.match(r"ON\s+CONFLICT|RETURNING", text[position : position + 40], re.IGNORECASE)
            detail = f" ({clause.group(0).upper()} is not read)" if clause else ""
            raise _Malformed(f"malformed INSERT statement{detail}", position)
    if not own_file and not statements:
        raise ImportFormatError(f"{path} holds no INSERT statement.")
    if own_file:
        if not committed or end_counts is None:
            raise ImportFormatError(f"{path}: truncated (no COMMIT / end line after {sum(numbers.values())} records).")
        if {name: count for name, count in end_counts.items() if count != 0} != numbers:
            raise ImportFormatError(
                f"{path}: the end line counts {end_counts} records but the file holds {numbers} "
                "(the file looks edited or truncated)."
            )
    if open_transaction is not None:
        raise _Malformed(
            "BEGIN without COMMIT: a database shell would store none of the rows after it", open_transaction
        )


def _between_statements(text: str, position: int, own_file: bool) -> tuple[int, dict | None]:
    """Past space, comments and meta-commands; with the counts of an export's end line among them, if any."""
    counts = None
    while True:
        position = _SPACE.match(text, position).end()
        if text.startswith("--", position):
            if own_file:
                counts = _end_counts(_END_LINE.match(text, position)) or counts
            line_end = text.find("\n", position)
            position = len(text) if line_end < 0 else line_end + 1
        elif text.startswith("/*", position):
            position = _comment_end(text, position)
        elif meta := _META_COMMAND.match(text, position):
            position = meta.end()
        else:
            return position, counts


def _statement_end(text: str, position: int) -> int:
    """The position after the `;` ending a statement that is skipped (strings, names and comments may hold `;`)."""
    while True:
        token = _STATEMENT_TOKENS.search(text, position)
        if token is None:
            return len(text)
        start, kind = token.start(), token.group(0)
        if kind == ";":
            return token.end()
        if kind in ("--", "/*"):
            position = _skip(text, start)
        elif kind == "\\":
            raise _Malformed("a meta-command inside a statement is not read", start)
        elif kind == '"':
            name = _IDENT.match(text, start)
            if name is None:
                raise _Malformed("unterminated quoted identifier", start)
            position = name.end()
        elif kind == "'":
            prefixed = start > 0 and text[start - 1] in "Ee" and not (start > 1 and _IDENT_CHAR.match(text, start - 2))
            string = _string(text, start - 1 if prefixed else start)
            position = string[1]
        elif start > 0 and _IDENT_CHAR.match(text, start - 1):  # `$` inside a name (a$b) or a parameter ($1)
            position = token.end()
        else:
            string = _string(text, start)
            position = string[1] if string else token.end()


def _tokens(text: str, position: int) -> tuple[list[tuple[str, str]], int]:
    """The tokens of a session statement up to its `;`, with the position after it: ("word", a name folded
    to lower case), ("name", a quoted one), ("string", a literal's text), ("number", ...) or ("mark", = , . ( ))."""
    tokens = []
    while True:
        position = _skip(text, position)
        if position >= len(text) or text[position] == ";":
            return tokens, position + 1
        if (string := _string(text, position)) is not None:
            tokens.append(("string", string[0]))
            position = string[1]
        elif (number := _NUMBER.match(text, position)) or (number := _MARK.match(text, position)):
            tokens.append(("number" if number.re is _NUMBER else "mark", number.group(0)))
            position = number.end()
        elif name := _IDENT.match(text, position):
            tokens.append(
                ("name", name.group(1).replace('""', '"'))
                if name.group(1) is not None
                else ("word", name.group(2).lower())
            )
            position = name.end()
        else:
            raise _Malformed("a session statement is not read with this in it (only names and literals)", position)


def _search_path_names(value: str) -> list[str]:
    """The schemas of a search_path string (`"$user", public`): quoted names as they are, others folded."""
    names = re.findall(r'\s*("(?:[^"]|"")*"|[^,]*?)\s*(?:,|$)', value)
    return [name[1:-1].replace('""', '"') if name.startswith('"') else name.lower() for name in names if name]


class _Session:
    """The settings the file's session statements leave: only those that keep the values read as here are
    accepted, and search_path is followed (it decides the table an unqualified name finds)."""

    def __init__(self) -> None:
        self.search_path: tuple[str, ...] | None = None  # None: the server's, the one the reader assumes
        self.search_path_line = 0

    def statement(self, text: str, position: int, keyword: str) -> int:
        """Reads one SET, RESET or SELECT statement (refusing those that would change what is read); its end."""
        tokens, end = _tokens(text, position + len(keyword))
        words = [value if kind == "word" else None for kind, value in tokens]
        if keyword == "SELECT":
            setting = self._select(tokens, words, position)
        elif keyword == "RESET":
            setting = self._reset(words, position)
        else:
            setting = self._set(tokens, words, position)
        if setting is not None:
            self._apply(*setting, keyword, position, _line(text, position))
        return end

    @staticmethod
    def _select(tokens: list, words: list, position: int) -> tuple[str, list[str] | None] | None:
        """A dump's `SELECT pg_catalog.set_config('name', 'value', false)` (a setting) or setval (nothing)."""
        call = tokens[2:] if words[:1] == ["pg_catalog"] and tokens[1:2] == [("mark", ".")] else tokens
        shape = [kind if kind != "mark" else value for kind, value in call]
        flag_ok = len(words) > 1 and words[-2] in ("true", "false")
        if shape == ["word", "(", "string", ",", "string", ",", "word", ")"] and call[0][1] == "set_config" and flag_ok:
            name, value = call[2][1].lower(), call[4][1]
            return name, _search_path_names(value) if name == "search_path" else [value]
        if call[:1] == [("word", "setval")] and (
            shape[1:] == ["(", "string", ",", "number", ")"]
            or (shape[1:] == ["(", "string", ",", "number", ",", "word", ")"] and flag_ok)
        ):
            return None
        raise _Malformed(
            "this SELECT is not read: a database shell would run it (only a dump's set_config and setval calls are "
            "read)",
            position,
        )

    @staticmethod
    def _reset(words: list, position: int) -> tuple[str, None]:
        if words == ["time", "zone"]:
            return "timezone", None
        if len(words) == 1 and words[0] not in ("all", "role") and words[0] is not None:
            return words[0], None
        shown = " ".join(word or "..." for word in words).upper()
        raise _Malformed(f"RESET {shown} is not read: it puts back settings that may change what is read", position)

    @staticmethod
    def _set(tokens: list, words: list, position: int) -> tuple[str, list[str] | None] | None:
        """`SET [SESSION | LOCAL] name {TO | =} value, ...` and the special forms: (setting, values or None)."""
        if words[:1] == ["local"] or (
            words[:1] == ["session"] and words[1:2] not in (["authorization"], ["characteristics"])
        ):
            tokens, words = tokens[1:], words[1:]
        if words[:1] in (["transaction"], ["constraints"]) or words[:2] == ["session", "characteristics"]:
            return None  # a transaction's modes or constraints' timing: no value changes
        if words[:1] == ["role"] or words[:2] == ["session", "authorization"]:
            shown = "ROLE" if words[0] == "role" else "SESSION AUTHORIZATION"
            raise _Malformed(f"SET {shown} is not read: another role may find another table by the same name", position)
        special = {("time", "zone"): "timezone", ("names",): "client_encoding", ("schema",): "search_path"}
        special[("xml", "option")] = "xmloption"
        for head, setting in special.items():
            if tuple(words[: len(head)]) == head:
                name, values = setting, tokens[len(head) :]
                break
        else:
            index = 1
            while tokens[index : index + 1] == [("mark", ".")] and index + 1 < len(tokens):
                index += 2
            name = ".".join(value for _, value in tokens[:index:2]).lower()
            if not tokens or (words[index : index + 1] != ["to"] and tokens[index : index + 1] != [("mark", "=")]):
                raise _Malformed("malformed SET statement", position)
            values = tokens[index + 1 :]
        if values in ([("word", "default")], [("word", "local")]):
            return name, None
        items = values[::2]
        if not items or any(kind == "mark" for kind, _ in items) or any(mark != ("mark", ",") for mark in values[1::2]):
            raise _Malformed(f"malformed SET {name} statement", position)
        return name, [value for _, value in items]

    def _apply(self, name: str, values: list[str] | None, keyword: str, position: int, line: int) -> None:
        if name in _HARMLESS_SETTINGS:
            return
        if name == "search_path":
            self.search_path, self.search_path_line = (None if values is None else tuple(values)), line
            return
        if values is None:
            shown = f"RESET {name}" if keyword == "RESET" else f"SET {name} TO DEFAULT"
            raise _Malformed(f"{shown} is not read: the server's default may change what is read", position)
        if name not in _READING_SETTINGS:
            raise _Malformed(
                f"SET {name} is not read: only the settings a dump writes, which leave the values as they are read, "
                "are accepted",
                position,
            )
        accepted, standard, otherwise = _READING_SETTINGS[name]
        if not accepted([value.lower() for value in values]):
            raise _Malformed(
                f"SET {name} = {', '.join(values)} is not read: {otherwise} (only {standard} is read)", position
            )

    def check_unqualified(self, entity: Entity, tables: _Tables, position: int) -> None:
        """The table an unqualified name finds under the file's search_path must be the imported one."""
        schemas = [name for name in self.search_path if name not in ("pg_catalog", "pg_temp", "$user")]
        if not schemas:
            raise _Malformed(
                f"table {entity.table}: the search_path set on line {self.search_path_line} names no schema, so a "
                "database shell would find no such table (give schema.table)",
                position,
            )
        if schemas[0] not in tables.schemas(entity):
            raise _Malformed(
                f"table {entity.table}: the search_path set on line {self.search_path_line} puts schema "
                f"{schemas[0]!r} first, where a database shell may find another table of that name",
                position,
            )


class _Tables:
    """What the database says about the entities' tables, asked once per file."""

    def __init__(self) -> None:
        self._columns: dict[str, list[str]] = {}
        self._schemas: dict[str, set[str]] = {}

    @staticmethod
    def _database(entity: Entity):
        return connections[router.db_for_read(entity.model) or DEFAULT_DB_ALIAS]

    def columns(self, entity: Entity) -> list[str]:
        """The columns of the entity's table in the database's order (migrations may have added some late)."""
        if entity.name not in self._columns:
            database = self._database(entity)
            with database.cursor() as cursor:
                description = database.introspection.get_table_description(cursor, entity.table)
            self._columns[entity.name] = [column.name for column in description]
        return self._columns[entity.name]

    def schemas(self, entity: Entity) -> set[str]:
        """The schema names that designate the entity's table: the one it is in (public unless configured)."""
        if entity.name not in self._schemas:
            found = get_connector(self._database(entity).alias).table_schema(entity.table)
            self._schemas[entity.name] = {found} if found else {"public", "main"}
        return self._schemas[entity.name]


def _insert_head(text: str, position: int, tables: _Tables) -> tuple[Entity, list[str], bool, bool, bool, int]:
    """`INTO name [AS alias] [(columns)] [OVERRIDING ... VALUE] VALUES (`: the entity, the columns (the table's
    without a list), whether they were listed, whether the identity column's values are ignored, whether the
    table's schema was given, and the position of the first value."""
    start = position
    position = _keyword(text, position, "INTO")
    if position is None:
        raise _Malformed("malformed INSERT statement (INTO expected)", start)
    names = []
    while True:
        name, position = _identifier(text, position)
        names.append(name)
        after = _skip(text, position)
        if not text.startswith(".", after):
            break
        position = after + 1
    entity = _entity(names, tables, start)
    if (after_as := _keyword(text, position, "AS")) is not None:
        _, position = _identifier(text, after_as)
    columns = None
    after = _skip(text, position)
    if text.startswith("(", after):
        columns, position = [], after + 1
        while True:
            column, position = _identifier(text, position)
            if column in columns:
                raise _Malformed(f"column {column!r} specified more than once", start)
            columns.append(column)
            position = _skip(text, position)
            if text.startswith(")", position):
                position += 1
                break
            if not text.startswith(",", position):
                raise _Malformed("malformed column list", position)
            position += 1
    drop_identity = False
    if (after_overriding := _keyword(text, position, "OVERRIDING")) is not None:
        kind = _WORD.match(text, _skip(text, after_overriding))
        after_kind = kind and _keyword(text, kind.end(), "VALUE")
        if not kind or kind.group(0).upper() not in ("SYSTEM", "USER") or after_kind is None:
            raise _Malformed("malformed OVERRIDING clause", after_overriding)
        drop_identity, position = kind.group(0).upper() == "USER", after_kind
    after_values = _keyword(text, position, "VALUES")
    opening = _skip(text, after_values) if after_values is not None else None
    if opening is None or not text.startswith("(", opening):
        raise _Malformed("only INSERT ... VALUES (...) statements are read", start)
    listed = columns is not None
    qualified = len(names) > 1
    return entity, columns if listed else tables.columns(entity), listed, drop_identity, qualified, opening + 1


def _entity(names: list[str], tables: _Tables, position: int) -> Entity:
    """The entity of a table name: unqualified or in the table's own schema; another schema is another table."""
    table = names[-1]
    entity = ENTITIES.by_table(table)
    if entity is None:
        raise _Malformed(f"unknown table {table!r}", position)
    if len(names) > 2:
        raise _Malformed(f"{'.'.join(names)!r}: a name with a database is not read (give schema.table)", position)
    if len(names) == 2 and names[0] not in tables.schemas(entity):
        raise _Malformed(
            f"table {names[0]}.{table} is not the imported one (that is in schema "
            f"{' or '.join(sorted(tables.schemas(entity)))!r}); another schema's tables are not imported",
            position,
        )
    return entity


def _row_values(text: str, position: int) -> tuple[list, int]:
    """The values of one parenthesized row (its `(` already read), with the position after its `)`."""
    values = []
    while True:
        simple = _SIMPLE_VALUE.match(text, position)
        if simple is not None:
            if simple.group("string") is not None:
                values.append(simple.group("string").replace("''", "'"))
            elif simple.group("number") is not None:
                digits = simple.group("number")
                values.append(int(digits) if digits.lstrip("+-").isdigit() else digits)
            else:
                word = simple.group("word").upper()
                values.append({"NULL": None, "TRUE": True, "FALSE": False}.get(word, _Default))
            position, end = simple.end(), simple.group("end")
        else:
            value, position = _value(text, position)
            values.append(value)
            position = _skip(text, position)
            end = text[position : position + 1]
            if end not in (",", ")"):
                raise _Malformed("malformed or truncated VALUES list", position)
            position += 1
        if end == ")":
            return values, position


def _record(entity: Entity, columns: list[str], listed: bool, values: list, drop_identity: bool, position: int):
    """The record of a row: a DEFAULT or omitted column is a field left out, as a json record lacking it."""
    # Without a column list a row may leave the table's last columns out, as PostgreSQL allows.
    if len(values) > len(columns) or (listed and len(values) < len(columns)):
        raise _Malformed(f"{len(values)} values for {len(columns)} columns", position)
    by_column = {f.column: f for f in entity.model._meta.concrete_fields}
    json_fields, hidden = base.json_fields(entity), entity.never_exported
    identity = entity.model._meta.auto_field
    record = {}
    for column, value in zip(columns, values, strict=False):
        field = by_column.get(column)
        name = field.name if field else column
        if name in hidden or value is _Default or (drop_identity and identity and name == identity.name):
            continue
        if type(value) is _Cast:
            value = value.resolved(field, column)
        if name in json_fields and isinstance(value, str):
            try:
                value = base.json_loads(value)
            except json.JSONDecodeError:
                value = base.Unparsable(value)
            except RecursionError:
                raise _Malformed(base.TOO_DEEP, position) from None
        record[name] = value
    return record
