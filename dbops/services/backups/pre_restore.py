"""The `<name>_pre_restore_<time>` databases a PostgreSQL full restore leaves behind (the database it
replaced, kept "until the next retention run"): list them and drop all but the newest."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import psycopg2
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg2 import sql

from dbops.engines import get_connector
from dbops.exceptions import RetentionError

logger = logging.getLogger(__name__)

PRE_RESTORE_INFIX = "_pre_restore_"


@dataclass
class PreRestorePrune:
    database: str
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    would_drop: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "database": self.database,
            "kept": self.kept,
            "dropped": self.dropped,
            "would_drop": self.would_drop,
            "failed": [{"name": name, "error": error} for name, error in self.failed],
        }


def _maintenance_connection(alias: str):
    """An autocommit connection to the server's `postgres` database (DROP DATABASE cannot run in a
    transaction, nor while connected to the database itself). The password goes as a parameter."""
    settings_dict = connections[alias].settings_dict
    connection = psycopg2.connect(
        dbname="postgres",
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        user=settings_dict["USER"] or None,
        password=settings_dict["PASSWORD"] or None,
        connect_timeout=10,
    )
    connection.autocommit = True
    return connection


def _pre_restore_pattern(database_name: str) -> re.Pattern:
    # The restore engine names them `<name cut to fit 63 bytes>_pre_restore_<YYYYmmddHHMMSS>`.
    suffix_length = len(PRE_RESTORE_INFIX) + 14
    return re.compile(re.escape(database_name[: 63 - suffix_length]) + re.escape(PRE_RESTORE_INFIX) + r"(\d{14})")


def pre_restore_databases(*, database: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Names of the kept pre-restore copies of `database`'s PostgreSQL database, newest first.

    The backup engine's listing is a LIKE on a name prefix, so it also returns the copies of other
    databases whose names start the same (`shop` vs `shop_staging`); only exact names stay."""
    if connections[database].vendor != "postgresql":
        return []
    connector = get_connector(database)
    pattern = _pre_restore_pattern(connector.database_name)
    stamped = [
        (match.group(1), name) for name in connector.pre_restore_databases() if (match := pattern.fullmatch(name))
    ]
    return [name for _, name in sorted(stamped, reverse=True)]


def pre_restore_databases_prune(*, database: str = DEFAULT_DB_ALIAS, dry_run: bool = False) -> PreRestorePrune:
    """Drops every pre-restore copy of `database` except the newest one; a copy still in use is
    reported as failed and left alone (never forced)."""
    if database not in connections.settings:
        raise RetentionError(f"Unknown database alias {database!r} (known: {', '.join(connections.settings)}).")
    names = pre_restore_databases(database=database)
    result = PreRestorePrune(database=database, kept=names[:1])
    if dry_run:
        result.would_drop = names[1:]
        return result
    if len(names) < 2:
        return result
    maintenance = _maintenance_connection(database)
    try:
        for name in names[1:]:
            try:
                with maintenance.cursor() as cursor:
                    cursor.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
            except psycopg2.Error as exc:
                error = (exc.pgerror or str(exc)).strip()
                logger.warning("retention could not drop pre-restore database %s: %s", name, error)
                result.failed.append((name, error))
            else:
                logger.info("retention dropped pre-restore database %s", name)
                result.dropped.append(name)
    finally:
        maintenance.close()
    return result
