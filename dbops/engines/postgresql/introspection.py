"""What PostgreSQL says about itself: sizes and use from its catalog and statistics views, query plans
(EXPLAIN ... FORMAT JSON), the facts about a table the analyzer needs, and pg_stat_statements. Mixed
into PostgreSQLConnector; runs on the alias's Django connection."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, transaction

from dbops.engines.base import DatabaseFacts, IndexStats, TableFacts, TableStats
from dbops.exceptions import AnalyzerError, FeatureUnavailable

logger = logging.getLogger(__name__)

_TABLES = """
    SELECT s.relname,
           CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE s.n_live_tup END,
           pg_table_size(s.relid), pg_indexes_size(s.relid), pg_total_relation_size(s.relid),
           quote_ident(s.schemaname) || '.' || quote_ident(s.relname)
      FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
     ORDER BY pg_total_relation_size(s.relid) DESC, s.relname
"""
_INDEXES = """
    SELECT s.relname, s.indexrelname, s.idx_scan, pg_relation_size(s.indexrelid), i.indisunique OR i.indisprimary
      FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
     ORDER BY s.relname, s.indexrelname
"""
_CACHE = """
    SELECT sum(blks_hit), sum(blks_read) FROM pg_stat_database WHERE datname = current_database()
"""
_CONNECTIONS = """
    SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),
           current_setting('max_connections')::int
"""
# Application statements only: not our own EXPLAINs, not catalog introspection.
_STATEMENTS_TOP = """
SELECT queryid, query, calls, mean_exec_time, total_exec_time
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query ~* '^\\s*(select|with|insert|update|delete)\\M'
  AND query !~* '(pg_stat_statements|pg_catalog\\.|information_schema\\.|\\mpg_class\\M)'
  {one}
ORDER BY mean_exec_time DESC
LIMIT %s
"""  # LIMIT NULL: every row


FEW_VALUES = 100  # a column with at most this many distinct values is a partial index's predicate


class PostgreSQLIntrospection:
    """The statistics and plan methods of the Connector interface, for PostgreSQL."""

    connection: Any
    alias: str
    supports_plans = True

    def database_stats(self, *, exact: bool) -> DatabaseFacts:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT current_database(), pg_database_size(current_database())")
            database, size = cursor.fetchone()
            cursor.execute(_TABLES)
            table_rows = cursor.fetchall()
            tables = [
                TableStats(name, estimate, None, data, index, total)
                for name, estimate, data, index, total, _ in table_rows
            ]
            if exact:
                for table, (*_, qualified) in zip(tables, table_rows, strict=True):
                    cursor.execute(f"SELECT count(*) FROM {qualified}")  # noqa: S608 - quote_ident'ed catalog name
                    table.rows_exact = cursor.fetchone()[0]
            cursor.execute(_INDEXES)
            indexes = [IndexStats(*row) for row in cursor.fetchall()]
            cursor.execute(_CACHE)
            hits, reads = cursor.fetchone()
            cursor.execute(_CONNECTIONS)
            active, maximum = cursor.fetchone()
        hits, reads = int(hits or 0), int(reads or 0)  # sum() of bigint is numeric (Decimal)
        total_blocks = hits + reads
        return DatabaseFacts(
            engine="postgresql",
            database=database,
            size_bytes=size,
            tables=tables,
            indexes=indexes,
            cache_hit_ratio=round(hits / total_blocks, 4) if total_blocks else None,
            connections=active,
            max_connections=maximum,
        )

    def explain(
        self, sql: str, *, analyze: bool, parameter_count: int, timeout_ms: int, verbose: bool = False
    ) -> list[dict[str, Any]]:
        """EXPLAIN (FORMAT JSON); a statement with $n placeholders gets its generic plan through PREPARE."""
        options = ("ANALYZE, BUFFERS, " if analyze else "") + ("VERBOSE, " if verbose else "") + "FORMAT JSON"
        # Rolled back whatever happens: EXPLAIN ANALYZE of an INSERT/UPDATE/DELETE really runs it.
        with plan_session(self.connection, timeout_ms=timeout_ms, parameter_count=parameter_count) as cursor:
            return explain_on(cursor, sql, options=options, parameter_count=parameter_count)

    def table_facts(self, relation: str) -> TableFacts | None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.oid, c.reltuples, COALESCE(s.n_live_tup, 0), n.nspname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
                "WHERE c.oid = to_regclass(quote_ident(%s))",
                [relation],
            )
            row = cursor.fetchone()
            if row is None or row[3] in ("pg_catalog", "information_schema"):
                return None
            oid, reltuples, live_rows, _schema = row
            cursor.execute(
                "SELECT attnum, attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped",
                [oid],
            )
            names = dict(cursor.fetchall())
            # n_distinct < 0 is a fraction of the rows, 0 means unknown.
            cursor.execute(
                "SELECT attname FROM pg_stats WHERE schemaname = %s AND tablename = %s AND ((n_distinct > 0 AND"
                " n_distinct <= %s) OR (n_distinct < 0 AND -n_distinct * GREATEST(%s, 1) <= %s))",
                [_schema, relation, FEW_VALUES, reltuples, FEW_VALUES],
            )
            few_values = {name for (name,) in cursor.fetchall()}
        rows = int(reltuples) if reltuples >= 0 else int(live_rows)  # -1: never analyzed
        return TableFacts(rows=rows, columns=frozenset(names.values()), few_values=frozenset(few_values))

    def statement_statistics_top(self, *, limit: int | None, queryid: str | None = None) -> list[tuple]:
        """pg_stat_statements' slowest statements (the extension is created when we may)."""
        connection = self.connection
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        except DatabaseError as exc:
            logger.info("pg_stat_statements cannot be created: %s", exc)  # no permission: it may still exist
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                if queryid is None:
                    cursor.execute(_STATEMENTS_TOP.format(one=""), [limit])
                else:
                    cursor.execute(_STATEMENTS_TOP.format(one="AND queryid = %s"), [int(queryid), limit])
                return cursor.fetchall()
        except DatabaseError as exc:
            raise FeatureUnavailable(str(exc).strip().splitlines()[0]) from exc


PREPARED = "dbops_analyze"


def explain_on(cursor, sql: str, *, options: str, parameter_count: int) -> list[dict[str, Any]]:
    """EXPLAIN on an open cursor (inside the caller's transaction); $n placeholders: the generic plan."""
    if parameter_count:
        cursor.execute(f"PREPARE {PREPARED} AS {sql}")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        nulls = ", ".join(["NULL"] * parameter_count)
        cursor.execute(f"EXPLAIN ({options}) EXECUTE {PREPARED}({nulls})")
    else:
        cursor.execute(f"EXPLAIN ({options}) {sql}")
    raw = cursor.fetchone()[0]
    return json.loads(raw) if isinstance(raw, str) else raw


@contextmanager
def plan_session(connection, *, timeout_ms: int, parameter_count: int) -> Iterator[Any]:
    """A cursor in a transaction that is always rolled back, under statement_timeout; a database error
    becomes one AnalyzerError, and the prepared statement of a generic plan is released after."""
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            yield cursor
            transaction.set_rollback(True, using=connection.alias)
    except DatabaseError as exc:
        raise explain_failure(exc, timeout_ms=timeout_ms) from exc
    finally:
        if parameter_count:
            prepared_release(connection)


def prepared_release(connection) -> None:
    """Prepared statements outlive the rollback: dropped after it (nothing to drop is fine)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", [PREPARED])
        if cursor.fetchone():
            cursor.execute(f"DEALLOCATE {PREPARED}")


def explain_error(exc: BaseException) -> str:
    message = str(exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def explain_failure(exc: BaseException, *, timeout_ms: int) -> AnalyzerError:
    """One readable line; a statement cancelled by statement_timeout says so and names the limit."""
    cause = exc.__cause__ or exc
    if getattr(cause, "pgcode", None) == QUERY_CANCELED:
        return AnalyzerError(
            f"The statement ran longer than the {timeout_ms / 1000:g} s limit and was cancelled; nothing was changed.",
            parameter="timeout",
        )
    return AnalyzerError(f"PostgreSQL could not explain the statement: {explain_error(exc)}")


QUERY_CANCELED = "57014"  # SQLSTATE of statement_timeout (and of pg_cancel_backend)
