"""Shared fixtures. The suite runs against the real servers started by `scripts/services start`
(see `make test`); it refuses to run on the embedded SQLite default so a green run always means
PostgreSQL was exercised."""

from __future__ import annotations

import os
import uuid

import pytest
from django.conf import settings

pytest_plugins = ["tests.browser"]  # one session-wide Chromium for every browser test


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
    import fcntl

    from django.core.management import call_command

    # pytest-xdist workers start together: one collects while the others wait, then finds nothing to copy.
    settings.STATIC_ROOT.parent.mkdir(parents=True, exist_ok=True)
    with open(settings.STATIC_ROOT.parent / ".collectstatic.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        call_command("collectstatic", interactive=False, verbosity=0)


DATABASE_FIXTURES = frozenset({"db", "transactional_db", "live_server"})


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the xdist_group markers added here
def pytest_collection_modifyitems(config, items):
    """Every test that touches the database gets the operations database too (DBOPS["DATABASE"]):
    the catalog, task runs and schedules live there, apart from the data a restore replaces."""
    from dbops.conf import operations_alias

    wanted = {"default", operations_alias()}
    for item in items:
        _one_worker_per_module(item)
        marker = item.get_closest_marker("django_db")
        if marker is None and not DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
            continue
        kwargs = dict(marker.kwargs) if marker else {}
        databases = kwargs.get("databases")
        if databases == "__all__":
            continue
        kwargs["databases"] = sorted(wanted | set(databases or ["default"]))
        item.add_marker(pytest.mark.django_db(*(marker.args if marker else ()), **kwargs), append=False)


def _one_worker_per_module(item) -> None:
    """Under pytest-xdist with `--dist loadgroup` (what `make test` runs) a module runs whole in
    one worker, so its module-scoped fixtures and its own Redis database are never shared; a module marked
    with a named xdist_group (state the server keeps for everyone, e.g. pg_stat_statements) runs with the
    others of it."""
    if item.get_closest_marker("xdist_group") is None:
        item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(scope="session")
def operations_cleanup_connection(django_db_setup):
    """This session's own autocommit connection to its operations test database (each xdist worker has
    its own), outside any test's transaction: what it deletes stays deleted."""
    from django.db import connections

    from dbops.conf import operations_alias

    connection = connections.create_connection(operations_alias())
    yield connection
    connection.close()


@pytest.fixture(autouse=True)
def no_task_runs_of_earlier_tests(request):
    """Every database test starts with no TaskRun rows: a test's own rows are rolled back (or flushed), but
    those a thread or a child process (a worker, a command) committed on its own connection outlive it."""
    if request.node.get_closest_marker("django_db") is None:
        return
    from dbops.models import TaskRun

    connection = request.getfixturevalue("operations_cleanup_connection")
    with request.getfixturevalue("django_db_blocker").unblock(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {connection.ops.quote_name(TaskRun._meta.db_table)}")  # noqa: S608 - the model table


@pytest.fixture
def s3_endpoint_url() -> str:
    url = os.environ.get("S3_ENDPOINT_URL")
    if not url:
        pytest.fail("S3_ENDPOINT_URL is not set; start the services with `make services`.")
    return url


def fresh_bucket(endpoint_url: str, *, prefix: str = "test", credentials: tuple[str, str] | None = None):
    """A new bucket on an S3 server; returns (name, boto3 client). Credentials default to the environment's."""
    import boto3

    key, secret = credentials or (
        os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3", endpoint_url=endpoint_url, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1"
    )
    client.create_bucket(Bucket=name)
    return name, client


def s3_storage_config(*, bucket: str, endpoint_url: str, location: str = "backups", credentials=None) -> dict:
    """A STORAGES entry for a bucket, as MultiPULT's settings write one."""
    key, secret = credentials or (
        os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url,
            "access_key": key,
            "secret_key": secret,
            "region_name": "us-east-1",
            "default_acl": None,
            "file_overwrite": False,
            "location": location,
        },
    }


@pytest.fixture
def s3_bucket(s3_endpoint_url, settings):
    """A fresh bucket on the loopback S3 server, wired into STORAGES['backups_s3'] for one test."""
    name, client = fresh_bucket(s3_endpoint_url)
    storages = dict(settings.STORAGES)
    storages["backups_s3"] = s3_storage_config(bucket=name, endpoint_url=s3_endpoint_url)
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
    from tests.dbops.commandline import child_database_env

    with django_db_blocker.unblock():
        return child_database_env()


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


@pytest.fixture(scope="session")
def small_part_s3_server(tmp_path_factory):
    """A moto S3 server of our own that accepts parts as small as 1 KiB (real S3 wants 5 MiB), so a test
    backup of a few hundred KiB is a multipart upload of many parts."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.ports import unused_port

    port = unused_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "S3_UPLOAD_PART_MIN_SIZE": "1024"},
        stdout=open(log, "wb"),  # noqa: SIM115 - the server's whole life
        stderr=subprocess.STDOUT,
    )
    import socket

    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield ("127.0.0.1", port)
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def faulty_s3(small_part_s3_server, settings):
    """A fresh bucket behind a fault-injecting loopback proxy (tests/s3_proxy.py), wired into
    STORAGES['backups_s3'], with 8 KiB parts, 3 attempts per part and 2 s timeouts."""
    from tests.s3_proxy import proxy_start

    proxy, stop = proxy_start(small_part_s3_server)
    testing = ("testing", "testing")
    name, direct = fresh_bucket("http://{}:{}".format(*small_part_s3_server), credentials=testing)
    storages = dict(settings.STORAGES)
    storages["backups_s3"] = s3_storage_config(bucket=name, endpoint_url=proxy.url, credentials=testing)
    settings.STORAGES = storages
    settings.S3_BACKUP_BUCKET = name
    settings.DBOPS = {**settings.DBOPS, "S3_PART_SIZE": 8192, "S3_PART_ATTEMPTS": 3, "S3_TIMEOUT_SECONDS": 2.0}
    proxy.bucket, proxy.direct = name, direct  # the test looks at the bucket past the proxy
    yield proxy
    stop()
