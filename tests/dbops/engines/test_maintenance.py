"""The one maintenance connection on the real server: whole-database statements, a database in use, an
unreachable server, and the probe validate_config uses (settings alone, no alias)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from dbops.engines import database_probe, get_connector
from dbops.engines.postgresql import maintenance
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
