"""The one maintenance connection on the real server: whole-database statements, a database in use, an
unreachable server, and the probe validate_config uses (settings alone, no alias)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from dbops.engines import database_probe, get_connector
from dbops.engines.postgresql import maintenance, swap
from dbops.exceptions import DatabaseOperationError, DatabaseUnavailable
from tests.ports import unused_port


def database_names() -> set[str]:
    with maintenance.maintenance_session(connection.settings_dict) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def scratch_database(db):
    name = f"engine_scratch_{uuid.uuid4().hex[:8]}"
    with maintenance.maintenance_session(connection.settings_dict) as admin:
        maintenance.database_create_like(admin, name, like=connection.settings_dict["NAME"])
    yield name
    with maintenance.maintenance_session(connection.settings_dict) as admin:
        maintenance.database_drop(admin, name, force=True)


def test_the_maintenance_connection_is_autocommit_on_the_postgres_database(db):
    with maintenance.maintenance_session(connection.settings_dict) as admin:
        assert admin.autocommit
        with admin.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone()[0] == "postgres"
    assert admin.closed


def test_a_database_in_use_is_not_dropped_unless_forced(scratch_database):
    holder = maintenance.connect(connection.settings_dict, dbname=scratch_database)
    try:
        with pytest.raises(DatabaseOperationError, match="is being accessed by other users"):
            maintenance.database_drop_or_fail(connection.settings_dict, scratch_database, force=False)
        assert scratch_database in database_names()
        maintenance.database_drop_or_fail(connection.settings_dict, scratch_database, force=True)
        assert scratch_database not in database_names()
    finally:
        holder.close()


def test_rename_and_create_like_keep_the_encoding(scratch_database):
    renamed = scratch_database + "_renamed"
    with maintenance.maintenance_session(connection.settings_dict) as admin:
        maintenance.database_rename(admin, scratch_database, renamed)
        try:
            with admin.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname IN (%s, %s)",
                    [renamed, connection.settings_dict["NAME"]],
                )
                encodings = {row[0] for row in cursor.fetchall()}
            assert len(encodings) == 1
            assert renamed in database_names() and scratch_database not in database_names()
        finally:
            maintenance.database_rename(admin, renamed, scratch_database)


def test_an_unreachable_server_is_one_line_naming_where(db):
    elsewhere = {**connection.settings_dict, "HOST": "127.0.0.1", "PORT": unused_port()}
    with pytest.raises(DatabaseUnavailable) as unreachable:
        maintenance.maintenance_connect(elsewhere)
    message = str(unreachable.value)
    assert message.startswith(f"Cannot connect to PostgreSQL at 127.0.0.1:{elsewhere['PORT']}/postgres: ")
    assert "Connection refused" in message and "\n" not in message


def test_the_probe_needs_no_alias_and_never_shows_the_password(db):
    assert database_probe(engine="postgresql", settings_dict=connection.settings_dict, timeout=5) == ""
    wrong = {**connection.settings_dict, "PASSWORD": "not-the-password-sentinel"}
    failure = database_probe(engine="postgresql", settings_dict=wrong, timeout=5)
    assert "password authentication failed" in failure and "sentinel" not in failure
    closed = {**connection.settings_dict, "PORT": unused_port()}
    assert "Connection refused" in database_probe(engine="postgresql", settings_dict=closed, timeout=5)


def test_pre_restore_copies_in_use_are_reported_by_the_connector(db):
    connector = get_connector()
    name = f"{connector.database_name}_pre_restore_20200101000000"
    with maintenance.maintenance_session(connection.settings_dict) as admin:
        maintenance.database_create_like(admin, name, like=connector.database_name)
    holder = maintenance.connect(connection.settings_dict, dbname=name)
    try:
        with pytest.raises(DatabaseOperationError):
            connector.drop_database(name)  # never forced by default
        assert name in connector.pre_restore_databases()
    finally:
        holder.close()
        connector.drop_database(name, force=True)
    assert name not in connector.pre_restore_databases()


class ReconnectingClient:
    """The admin connection of renames_commit, passed through, except that right after each of its first
    `times` session sweeps a client connects to `database` again (as an app server's pool would)."""

    def __init__(self, admin, database: str, times: int) -> None:
        self._admin, self._database, self._left = admin, database, times
        self.clients: list = []

    def __getattr__(self, name):
        return getattr(self._admin, name)

    def __setattr__(self, name, value):
        if name == "autocommit":
            self._admin.autocommit = value
        else:
            super().__setattr__(name, value)

    def cursor(self):
        outer, cursor = self, self._admin.cursor()

        class Cursor:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                cursor.close()

            def execute(self, sql, params=None):
                cursor.execute(sql, params)
                if sql == swap.TERMINATE_SQL and outer._left:
                    outer._left -= 1
                    outer.clients.append(maintenance.connect(connection.settings_dict, dbname=outer._database))

        return Cursor()


def test_the_swap_is_retried_while_a_client_reconnects_between_sweep_and_rename(scratch_database):
    renamed = scratch_database + "_swapped"
    admin = maintenance.maintenance_connect(connection.settings_dict)
    reconnecting = ReconnectingClient(admin, scratch_database, times=1)
    try:
        # Given a client that connects again right after the sweep: the rename meets it (PostgreSQL waits
        # 5 s for it to go, then refuses)...
        swap.renames_commit(reconnecting, [(scratch_database, renamed)])
        # ...then the second sweep ends it and the rename goes through.
        assert renamed in database_names() and scratch_database not in database_names()
        assert len(reconnecting.clients) == 1
        for client in reconnecting.clients:
            with pytest.raises(maintenance.Error):
                client.cursor().execute("SELECT 1")
    finally:
        for client in reconnecting.clients:
            client.close()
        with admin.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{renamed}" RENAME TO "{scratch_database}"')
        admin.close()


def test_a_client_that_always_reconnects_fails_the_swap_with_nothing_renamed(scratch_database, monkeypatch):
    monkeypatch.setattr(swap, "SWAP_ATTEMPTS", 2)  # each refused try costs PostgreSQL's 5 s wait
    admin = maintenance.maintenance_connect(connection.settings_dict)
    reconnecting = ReconnectingClient(admin, scratch_database, times=swap.SWAP_ATTEMPTS)
    try:
        with pytest.raises(maintenance.Error, match="is being accessed by other users"):
            swap.renames_commit(reconnecting, [(scratch_database, scratch_database + "_swapped")])
        assert scratch_database in database_names() and admin.autocommit  # left as it was
    finally:
        for client in reconnecting.clients:
            client.close()
        admin.close()
