"""One table as of a past moment: its rows are copied out of a scratch server paused at that moment
(`copy_out`, run while the replay is paused) into a spool file, then loaded into the live database in one
transaction (`rows_load`): replacing the table's rows, or into a new table shaped like it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dbops.engines.postgresql import maintenance
from dbops.exceptions import PitrError

COLUMNS_SQL = """
    SELECT a.attname FROM pg_attribute a
    WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
    ORDER BY a.attnum
"""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class TableRows:
    table: str
    columns: list[str]
    spool: Path
    rows: int = 0


def table_exists(cursor, table: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"public.{quote_ident(table)}"])
    return bool(cursor.fetchone()[0])


def copy_out(cursor, *, table: str, spool: Path, moment: str) -> TableRows:
    """Copies the rows of public.`table` as the (paused) server sees them into `spool`."""
    if not table_exists(cursor, table):
        raise PitrError(f"Table {table} did not exist at {moment}: nothing to bring back.")
    cursor.execute(COLUMNS_SQL, [f"public.{quote_ident(table)}"])
    columns = [row[0] for row in cursor.fetchall()]
    column_list = ", ".join(quote_ident(c) for c in columns)
    with open(spool, "wb") as sink:
        cursor.copy_expert(f"COPY public.{quote_ident(table)} ({column_list}) TO STDOUT WITH (FORMAT binary)", sink)
    cursor.execute(f"SELECT count(*) FROM public.{quote_ident(table)}")  # noqa: S608 (quoted, checked to exist)
    return TableRows(table=table, columns=columns, spool=spool, rows=int(cursor.fetchone()[0]))


def _missing_live_table(table: str, database: str) -> PitrError:
    return PitrError(
        f"Table {table} does not exist in database {database} now; restore-table brings back the rows "
        "of an existing table (the new rows take the live table's shape)."
    )


def _taken_table(into: str, database: str) -> PitrError:
    return PitrError(f"Table {into} already exists in database {database}; choose another name.")


def live_table_check(settings_dict, *, database: str, table: str, into: str) -> int:
    """Before any replay: the live table exists (and `into`, when given, does not); its row count now."""
    connection = maintenance.connect(settings_dict, dbname=database, autocommit=True)
    try:
        with connection.cursor() as cursor:
            if not table_exists(cursor, table):
                raise _missing_live_table(table, database)
            if into and table_exists(cursor, into):
                raise _taken_table(into, database)
            cursor.execute(f"SELECT count(*) FROM public.{quote_ident(table)}")  # noqa: S608 (quoted, exists)
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


def rows_load(settings_dict, *, database: str, rows: TableRows, into: str) -> None:
    """Loads `rows` into the live database in one transaction: into a new table `into` shaped like the
    original (LIKE … INCLUDING ALL), or (`into` empty) in place of the table's current rows."""
    source = f"public.{quote_ident(rows.table)}"
    target = f"public.{quote_ident(into)}" if into else source
    column_list = ", ".join(quote_ident(c) for c in rows.columns)
    connection = maintenance.connect(settings_dict, dbname=database, autocommit=False)
    try:
        with connection.cursor() as cursor:
            if not table_exists(cursor, rows.table):  # again: it may have gone while the replay ran
                raise _missing_live_table(rows.table, database)
            if into:
                if table_exists(cursor, into):
                    raise _taken_table(into, database)
                cursor.execute(f"CREATE TABLE {target} (LIKE {source} INCLUDING ALL)")
            else:
                cursor.execute(f"DELETE FROM {target}")  # noqa: S608 (quoted identifier checked to exist)
            with open(rows.spool, "rb") as spool:
                cursor.copy_expert(f"COPY {target} ({column_list}) FROM STDIN WITH (FORMAT binary)", spool)
        connection.commit()  # Django's deferred foreign keys are checked here: a broken reference rolls back
    except maintenance.Error as exc:
        connection.rollback()
        raise PitrError(f"Could not load the rows of {rows.table} as of then: {str(exc).strip()}") from exc
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()
