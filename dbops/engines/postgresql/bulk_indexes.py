"""Bulk loads on PostgreSQL: drop the plain indexes and foreign keys of tables about to receive more
new rows than they hold, and put them back after the load (PostgreSQL's "Populating a Database"
advice: one sort per index and one join per key instead of per-row work), then ANALYZE them.

Used by seed_data and import_data inside their own transaction, so a failure restores everything.
Dropping takes an ACCESS EXCLUSIVE lock on those tables until commit, which is why only tables where
the new rows outnumber the existing ones are rebuilt. Primary keys and unique constraints stay.
"""

from __future__ import annotations

from django.db import models

# Indexes that back no constraint (primary keys and unique constraints stay), and foreign keys.
_SQL_PLAIN_INDEXES = """
    SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
      FROM pg_index i
     WHERE i.indrelid = ANY(%s::regclass[])
       AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
     ORDER BY 1
"""
_SQL_FOREIGN_KEYS = """
    SELECT conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid)
      FROM pg_constraint
     WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])
     ORDER BY 1, 2
"""


class IndexSuspension:
    """suspend() before a bulk load, restore() after it, in the same transaction (PostgreSQL only)."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.rebuilt_tables: list[str] = []
        self._recreate: list[str] = []

    def tables_worth_rebuilding(self, rows_per_model: dict[type[models.Model], int]) -> list[str]:
        """Tables where the new rows outnumber the existing ones (counted up to that number only) and that
        this user owns: dropping an index or a constraint takes the owner (a user with table rights only
        imports the slower way, the indexes kept)."""
        tables = []
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname FROM pg_class WHERE oid = ANY(%s::regclass[]) AND pg_has_role(relowner, 'USAGE')",
                [[quote(model._meta.db_table) for model in rows_per_model]],
            )
            owned = {name for (name,) in cursor.fetchall()}
            for model, new_rows in rows_per_model.items():
                if model._meta.db_table not in owned:
                    continue
                table = quote(model._meta.db_table)
                # Quoted identifier from model metadata; the bound keeps this cheap on huge tables.
                cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT %s) AS existing", [new_rows])  # noqa: S608
                if cursor.fetchone()[0] < new_rows:
                    tables.append(model._meta.db_table)
        return tables

    def suspend(self, rows_per_model: dict[type[models.Model], int]) -> None:
        if self.connection.vendor != "postgresql":
            return
        self.rebuilt_tables = self.tables_worth_rebuilding(rows_per_model)
        if not self.rebuilt_tables:
            return
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            cursor.execute(_SQL_PLAIN_INDEXES, [self.rebuilt_tables])
            indexes = cursor.fetchall()
            cursor.execute(_SQL_FOREIGN_KEYS, [self.rebuilt_tables])
            foreign_keys = cursor.fetchall()
            # Checks deferred earlier in this transaction block ALTER TABLE ("pending trigger events"):
            # run them now, as Django's check_constraints() does, then go back to deferring.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            # Catalog output (regclass text, quote_ident, pg_get_*def) is already quoted SQL.
            for name, _ in indexes:
                cursor.execute(f"DROP INDEX {name}")
            for table, name, _ in foreign_keys:
                cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        self._recreate = [definition for _, definition in indexes]
        self._recreate += [
            f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}" for table, name, definition in foreign_keys
        ]
        self._recreate += [f"ANALYZE {quote(table)}" for table in self.rebuilt_tables]

    def restore(self) -> None:
        with self.connection.cursor() as cursor:
            for statement in self._recreate:
                cursor.execute(statement)
        self._recreate = []
