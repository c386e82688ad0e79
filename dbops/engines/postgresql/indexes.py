"""What the index advisor asks PostgreSQL: the indexes that exist (definition, size, use), hypothetical
indexes through the HypoPG extension (the planner costs an index that is never built), and plans in a
scratch database where candidate indexes are really built. Mixed into PostgreSQLConnector."""

from __future__ import annotations

import logging
from typing import Any

import psycopg2
from django.db import DatabaseError, transaction

from dbops.engines.base import HypotheticalPlan, IndexFacts
from dbops.engines.postgresql.introspection import (
    explain_error,
    explain_failure,
    explain_on,
    plan_session,
    prepared_release,
)
from dbops.exceptions import AnalyzerError, FeatureUnavailable

logger = logging.getLogger(__name__)

# Key columns (an expression as its text, " DESC" when descending), INCLUDE columns and the predicate
# of every index of the user's tables; pg_get_indexdef(oid, n, true) names the n-th column.
_INDEX_CATALOG = """
SELECT c.relname, i.relname, pg_get_indexdef(x.indexrelid), am.amname,
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k + 1, true)
                    || CASE WHEN x.indoption[k] & 1 = 1 THEN ' DESC' ELSE '' END
               FROM generate_series(0, x.indnkeyatts - 1) k ORDER BY k),
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k + 1, true)
               FROM generate_series(x.indnkeyatts, x.indnatts - 1) k ORDER BY k),
       COALESCE(pg_get_expr(x.indpred, x.indrelid, true), ''),
       x.indisunique OR x.indisprimary, x.indisvalid,
       pg_relation_size(x.indexrelid), COALESCE(s.idx_scan, 0)
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class c ON c.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_am am ON am.oid = i.relam
  LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = x.indexrelid
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
   AND (%s::text[] IS NULL OR c.relname = ANY(%s::text[]))
 ORDER BY c.relname, i.relname
"""


class PostgreSQLIndexes:
    """The index methods of the Connector interface, for PostgreSQL."""

    connection: Any
    alias: str
    supports_hypothetical_indexes = True
    supports_concurrent_indexes = True

    def index_catalog(self, *, tables: list[str] | None = None) -> list[IndexFacts]:
        with self.connection.cursor() as cursor:
            cursor.execute(_INDEX_CATALOG, [tables, tables])
            return [
                IndexFacts(
                    table=table,
                    name=name,
                    definition=definition,
                    method=method,
                    keys=tuple(keys),
                    include=tuple(include),
                    predicate=predicate,
                    unique=unique,
                    valid=valid,
                    size_bytes=size,
                    scans=scans,
                )
                for table, name, definition, method, keys, include, predicate, unique, valid, size, scans in (
                    cursor.fetchall()
                )
            ]

    def statistics_since(self) -> Any:
        """When the server's use counters (idx_scan) of this database started counting."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(stats_reset, pg_postmaster_start_time()) FROM pg_stat_database"
                " WHERE datname = current_database()"
            )
            row = cursor.fetchone()
        return row[0] if row else None

    def hypothetical_indexes_ensure(self) -> None:
        """Makes HypoPG usable in this database (CREATE EXTENSION where it is missing and we may);
        FeatureUnavailable says why not: not installed on the server, or not permitted."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'")
            if cursor.fetchone():
                return
        try:
            with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
            return
        except DatabaseError as exc:
            reason = explain_error(exc)
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_database(), current_user, current_setting('server_version_num')::int / 10000,"
                " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg')"
            )
            database, user, major, installed = cursor.fetchone()
        if not installed:
            raise FeatureUnavailable(
                f"HypoPG is not installed on the database server (Debian/Ubuntu: apt-get install "
                f"postgresql-{major}-hypopg, then CREATE EXTENSION hypopg in {database})."
            )
        raise FeatureUnavailable(
            f"HypoPG is installed on the server, but {user} cannot create it in database {database} ({reason}); "
            f"a superuser can run CREATE EXTENSION hypopg there."
        )

    def explain_hypothetical(
        self, sql: str, *, index_sql: str, parameter_count: int, timeout_ms: int
    ) -> HypotheticalPlan:
        """The plan of `sql` as if the index of `index_sql` (a CREATE INDEX) existed; nothing is built."""
        connection = self.connection
        hypothetical = None
        try:
            with plan_session(connection, timeout_ms=timeout_ms, parameter_count=parameter_count) as cursor:
                cursor.execute("SELECT indexrelid, indexname FROM hypopg_create_index(%s)", [index_sql])
                hypothetical = cursor.fetchone()
                raw = explain_on(cursor, sql, options="VERBOSE, FORMAT JSON", parameter_count=parameter_count)
                cursor.execute("SELECT hypopg_relation_size(%s)", [hypothetical[0]])
                size = cursor.fetchone()[0]
        finally:
            if hypothetical is not None:  # HypoPG keeps them in the session, not the transaction
                with connection.cursor() as cursor:
                    cursor.execute("SELECT hypopg_drop_index(%s)", [hypothetical[0]])
        return HypotheticalPlan(raw_plan=raw, index_name=hypothetical[1], size_bytes=int(size or 0))


def scratch_explain(raw_connection, sql: str, *, analyze: bool, parameter_count: int, timeout_ms: int) -> list:
    """A plan in a scratch database, on a connection of the engine's own (EXPLAIN ANALYZE is rolled back)."""
    options = "ANALYZE, BUFFERS, VERBOSE, FORMAT JSON" if analyze else "VERBOSE, FORMAT JSON"
    try:
        with raw_connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            return explain_on(cursor, sql, options=options, parameter_count=parameter_count)
    except psycopg2.Error as exc:
        raise explain_failure(exc, timeout_ms=timeout_ms) from exc
    finally:
        raw_connection.rollback()
        if parameter_count:
            prepared_release(raw_connection)
            raw_connection.commit()


def scratch_execute(raw_connection, statements: list[str]) -> None:
    """DDL in a scratch database (CREATE INDEX, ANALYZE), committed."""
    statement = ""
    try:
        with raw_connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        raw_connection.commit()
    except psycopg2.Error as exc:
        raw_connection.rollback()
        raise AnalyzerError(f"The scratch database refused {statement[:120]!r}: {explain_error(exc)}") from exc
