"""The engine's own connections to a PostgreSQL server, and the statements on whole databases.

Every CREATE/DROP/ALTER DATABASE and every server-wide query runs on one kind of connection: autocommit
(those statements cannot run in a transaction block), to the server's `postgres` database (a database
cannot be dropped or renamed by a session connected to it), the password passed as a parameter.
Connection settings come from a Django DATABASES entry, so this works for aliases added at run time and
without Django settings at all (validate_config).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg2
from psycopg2 import sql

from dbops.engines.postgresql.tools import CONNECT_TIMEOUT_SECONDS
from dbops.exceptions import DatabaseOperationError, DatabaseUnavailable

MAINTENANCE_DB = "postgres"
# OPTIONS keys that Django itself consumes; libpq would reject them.
_DJANGO_ONLY_OPTIONS = frozenset({"isolation_level", "server_side_binding", "assume_role", "pool", "cursor_factory"})

Error = psycopg2.Error  # the driver's base error, for callers inside the engine


def connection_params(settings_dict: Mapping[str, Any], *, dbname: str | None = None) -> dict[str, Any]:
    """libpq keywords for a Django DATABASES entry, as Django's own backend builds them."""
    options = {k: v for k, v in (settings_dict.get("OPTIONS") or {}).items() if k not in _DJANGO_ONLY_OPTIONS}
    params: dict[str, Any] = {"client_encoding": "UTF8", "connect_timeout": CONNECT_TIMEOUT_SECONDS, **options}
    params["dbname"] = dbname or settings_dict.get("NAME") or MAINTENANCE_DB
    for key, keyword in (("USER", "user"), ("PASSWORD", "password"), ("HOST", "host"), ("PORT", "port")):
        if settings_dict.get(key):
            params[keyword] = settings_dict[key]
    return params


def connect(
    settings_dict: Mapping[str, Any],
    *,
    dbname: str | None = None,
    autocommit: bool = True,
    error: type[Exception] = DatabaseUnavailable,
):
    """A connection of the engine's own (not Django's): `error` with one line when the server refuses."""
    params = connection_params(settings_dict, dbname=dbname)
    try:
        raw = psycopg2.connect(**params)
    except psycopg2.OperationalError as exc:
        where = f"{params.get('host', 'local socket')}:{params.get('port', 5432)}/{params['dbname']}"
        raise error(f"Cannot connect to PostgreSQL at {where}: {first_line(exc)}") from exc
    raw.autocommit = autocommit
    return raw


def maintenance_connect(settings_dict: Mapping[str, Any], *, error: type[Exception] = DatabaseUnavailable):
    """The one maintenance connection: autocommit, to the `postgres` database. The caller closes it."""
    return connect(settings_dict, dbname=MAINTENANCE_DB, autocommit=True, error=error)


@contextmanager
def maintenance_session(settings_dict: Mapping[str, Any], *, error: type[Exception] = DatabaseUnavailable) -> Iterator:
    """maintenance_connect() as a context manager that closes the connection."""
    connection = maintenance_connect(settings_dict, error=error)
    try:
        yield connection
    finally:
        connection.close()


def database_create_like(admin, name: str, *, like: str) -> None:
    """CREATE DATABASE `name` with the encoding and collation of `like` (UTF8/C.UTF-8 if it is gone)."""
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = %s", [like]
        )
        row = cursor.fetchone()
        encoding, collate, ctype = row if row else ("UTF8", "C.UTF-8", "C.UTF-8")
        cursor.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s").format(
                sql.Identifier(name)
            ),
            [encoding, collate, ctype],
        )


def database_create_missing(admin, name: str) -> bool:
    """CREATE DATABASE `name` (the server's defaults) unless it exists; True when it was created."""
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone():
            return False
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def database_drop(admin, name: str, *, force: bool) -> None:
    """DROP DATABASE IF EXISTS; `force` ends the sessions on it first, otherwise one in use fails."""
    statement = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if force else "DROP DATABASE IF EXISTS {}"
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL(statement).format(sql.Identifier(name)))


def database_drop_or_fail(settings_dict: Mapping[str, Any], name: str, *, force: bool) -> None:
    """database_drop on a maintenance connection of its own; DatabaseOperationError with the server's words."""
    with maintenance_session(settings_dict) as admin:
        try:
            database_drop(admin, name, force=force)
        except psycopg2.Error as exc:
            raise DatabaseOperationError(first_line(exc)) from exc  # the server names the database


def database_rename(admin, name: str, new_name: str) -> None:
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(name), sql.Identifier(new_name)))


def databases_matching(settings_dict: Mapping[str, Any], pattern: str) -> list[str]:
    """Names of the server's databases matching the regular expression, sorted."""
    with maintenance_session(settings_dict) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname ~ %s ORDER BY datname", [pattern])
        return [row[0] for row in cursor.fetchall()]


def server_probe(settings_dict: Mapping[str, Any], *, timeout: float) -> str:
    """Connects once to the configured database; '' when that works, else the server's first line."""
    params = connection_params(settings_dict)
    params["connect_timeout"] = max(1, round(timeout))
    try:
        connection = psycopg2.connect(**params)
    except psycopg2.Error as exc:
        return first_line(exc)
    connection.close()
    return ""


def first_line(exc: BaseException) -> str:
    text = (getattr(exc, "pgerror", None) or str(exc)).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__
