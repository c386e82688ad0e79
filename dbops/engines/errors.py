"""What a database error from either engine is about, read from its text (Django raises the same
DatabaseError classes for both, and only the text tells a missing table from a refused connection).
The fronts word the advice; this module only knows how PostgreSQL and SQLite say things."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections


class DatabaseProblem(StrEnum):
    MISSING_TABLE = "missing table"
    MISSING_COLUMN = "missing column"
    MISSING_DATABASE = "missing database"
    UNREACHABLE = "unreachable"
    OTHER = "other"


@dataclass(frozen=True)
class DatabaseErrorFacts:
    problem: DatabaseProblem
    text: str  # the server's message on one line, without the SQL it echoes
    name: str = ""  # the missing table, column (table.column) or database
    unreachable: str = ""  # for UNREACHABLE: which server or file, and why, in one line


_MISSING_TABLE = re.compile(r'(?<!of )relation "(?P<pg>[^"]+)" does not exist|no such table: (?P<sqlite>\S+)')
_MISSING_COLUMN = re.compile(
    r'column "(?P<column>[^"]+)" of relation "(?P<table>[^"]+)" does not exist'
    r"|no such column: (?P<sqlite>\S+)|column (?P<qualified>\S+) does not exist"
)
_MISSING_DATABASE = re.compile(r'database "(?P<name>[^"]+)" does not exist')
_CANNOT_CONNECT = ("could not connect", "connection to server", "unable to open database file", "Connection refused")


def _unreachable_line(alias: str, text: str) -> str:
    settings_dict = connections[alias].settings_dict
    if settings_dict.get("HOST"):  # worded like the connectors' own DatabaseUnavailable
        where = f"{settings_dict['HOST']}:{settings_dict.get('PORT') or 5432}/{settings_dict.get('NAME')}"
        return f"Cannot connect to PostgreSQL at {where}: {text}"
    return f"Cannot open the database {settings_dict.get('NAME')}: {text}"


def database_error_facts(exc: DatabaseError, *, alias: str = DEFAULT_DB_ALIAS) -> DatabaseErrorFacts:
    """What `exc` is about; `alias`: the database it came from, named when it cannot be reached."""
    raw = str(exc)
    text = " ".join(line.strip() for line in raw.strip().splitlines() if not line.startswith(("LINE ", " ")))
    if missing := _MISSING_TABLE.search(raw):
        return DatabaseErrorFacts(DatabaseProblem.MISSING_TABLE, text, missing.group("pg") or missing.group("sqlite"))
    if column := _MISSING_COLUMN.search(raw):
        name = column.group("column") and f"{column.group('table')}.{column.group('column')}"
        name = name or column.group("sqlite") or column.group("qualified")
        return DatabaseErrorFacts(DatabaseProblem.MISSING_COLUMN, text, name)
    if absent := _MISSING_DATABASE.search(text):
        return DatabaseErrorFacts(DatabaseProblem.MISSING_DATABASE, text, absent.group("name"))
    if any(marker in text for marker in _CANNOT_CONNECT):
        return DatabaseErrorFacts(DatabaseProblem.UNREACHABLE, text, unreachable=_unreachable_line(alias, text))
    return DatabaseErrorFacts(DatabaseProblem.OTHER, text)
