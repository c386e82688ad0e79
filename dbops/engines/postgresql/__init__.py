"""PostgreSQL: the connector (dump, restore, scratch databases, locks), its client tools, the server
side of PITR, and bulk loading (COPY, index suspension)."""

from dbops.engines.postgresql.connector import PostgreSQLConnector

__all__ = ["PostgreSQLConnector"]
