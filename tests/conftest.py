"""Shared fixtures. The suite runs against the real servers started by `scripts/services start`
(see `make test`); it refuses to run on the embedded SQLite default so a green run always means
PostgreSQL was exercised."""

from __future__ import annotations

import os
import uuid

import pytest
from django.conf import settings

pytest_plugins = ["tests.browser"]


def pytest_configure(config):
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.exit(
            "The test suite needs the real servers: run `make test`, or "
            '`scripts/services start && eval "$(scripts/services env)"` before pytest.',
            returncode=4,
        )


@pytest.fixture(scope="session", autouse=True)
def collected_static_files():
    """The admin renders hashed static names from collectstatic's manifest (WhiteNoise's storage), as it
    does in the image; collectstatic only copies what changed, so this costs a second once."""
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)


DATABASE_FIXTURES = frozenset({"db", "transactional_db", "live_server"})


def pytest_collection_modifyitems(config, items):
    """Every test that touches the database gets the operations database too (DBOPS["DATABASE"]):
    the catalog, task runs and schedules live there, apart from the data a restore replaces."""
    from dbops.conf import operations_alias

    wanted = {"default", operations_alias()}
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is None and not DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
            continue
        kwargs = dict(marker.kwargs) if marker else {}
        databases = kwargs.get("databases")
        if databases == "__all__":
            continue
        kwargs["databases"] = sorted(wanted | set(databases or ["default"]))
        item.add_marker(pytest.mark.django_db(*(marker.args if marker else ()), **kwargs), append=False)


@pytest.fixture
def s3_endpoint_url() -> str:
    url = os.environ.get("S3_ENDPOINT_URL")
    if not url:
        pytest.fail("S3_ENDPOINT_URL is not set; start the services with `make services`.")
    return url


@pytest.fixture
def s3_bucket(s3_endpoint_url, settings):
    """A fresh bucket on the loopback S3 server, wired into STORAGES['backups_s3'] for one test."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint_url,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    storages = dict(settings.STORAGES)
    storages["backups_s3"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": name,
            "endpoint_url": s3_endpoint_url,
            "access_key": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            "region_name": "us-east-1",
            "default_acl": None,
            "file_overwrite": False,
            "location": "backups",
        },
    }
    settings.STORAGES = storages
    settings.S3_BACKUP_BUCKET = name
    yield name
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


@pytest.fixture
def backup_dir(tmp_path, settings):
    """An empty local backup folder wired into STORAGES['backups'] for one test."""
    folder = tmp_path / "backups"
    folder.mkdir()
    storages = dict(settings.STORAGES)
    storages["backups"] = {**storages["backups"], "OPTIONS": {**storages["backups"]["OPTIONS"], "location": folder}}
    settings.STORAGES = storages
    settings.BACKUP_DIR = folder
    return folder


@pytest.fixture
def test_db_env(django_db_setup, django_db_blocker):
    """Environment that points a child process at the (committed state of the) test database."""
    from django.db import connection, connections

    from dbops.conf import operations_alias

    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
        ops_name = connections[operations_alias()].settings_dict["NAME"]
    return {"DB_NAME": name, "OPS_DB_NAME": ops_name}


@pytest.fixture
def sqlite_env(tmp_path):
    """Environment for a child process on a fresh embedded SQLite file (no servers)."""
    from tests.dbops.commandline import sqlite_environment

    return sqlite_environment(tmp_path)


@pytest.fixture
def drop_pre_restore_databases():
    """Drops the `<test db>_pre_restore_*` databases a full restore leaves behind."""
    yield
    from dbops.engines import get_connector

    connector = get_connector()
    for name in connector.pre_restore_databases():
        connector.drop_database(name, force=True)
