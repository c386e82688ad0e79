"""Throwaway PostgreSQL clusters for the PITR tests: initdb'd as the postgres OS user in a temporary
folder, on free loopback ports, always stopped and deleted at teardown. The shared server is never used."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
from django.conf import settings as django_settings
from django.db import DEFAULT_DB_ALIAS, connections

from dbops.engines.postgresql.server import pitr_archive_command
from dbops.engines.postgresql.tools import tool_path
from dbops.services.pitr.wal_archive import cluster_id_from_data_dir, wal_prefix
from tests.ports import unused_port

# The server programs' folder, found the engine's way (a PATH entry may be a symlink: resolve it).
PG_BIN = Path(os.environ.get("PG_BIN") or Path(os.path.realpath(tool_path("initdb") or "initdb")).parent)
DB_OWNER = "postgres"


def as_db_owner(*command: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """initdb and pg_ctl refuse to run as root; run them as the postgres OS user when we are root."""
    prefix = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", DB_OWNER, "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *command], env=env, capture_output=True, text=True, check=check, timeout=180)


def server_python() -> tuple[str, dict[str, str]]:
    """An interpreter the postgres OS user can run manage.py with, and the environment it needs.

    The venv's own interpreter may sit under a home directory postgres cannot enter (here /root is
    0700); then the system interpreter of the same version runs with the venv's site-packages."""
    probe = as_db_owner(sys.executable, "-c", "import django", check=False)
    if probe.returncode == 0:
        return sys.executable, {}
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    return system, {"PYTHONPATH": sysconfig.get_paths()["purelib"]}


class Cluster:
    def __init__(self, data_dir: Path, port: int, env: dict[str, str]) -> None:
        self.data_dir, self.port, self.env = data_dir, port, env
        self.log = data_dir.parent / f"{data_dir.name}.log"

    def initdb(self, **settings: str) -> None:
        as_db_owner(
            str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
            "--wal-segsize=1", "-E", "UTF8", "--locale=C.UTF-8", env=self.env,
        )  # fmt: skip
        base = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.data_dir.parent}'",
            "fsync": "off",
            "shared_buffers": "16MB",
            "max_connections": "20",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            for key, value in {**base, **settings}.items():
                conf.write(f"{key} = {value}\n")

    def start(self) -> None:
        result = as_db_owner(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log), "-w", "-t", "120", "start",
            env=self.env, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"pg_ctl start failed: {result.stderr}\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            as_db_owner(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", check=False)

    def connect(self):
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        connection.autocommit = True
        return connection

    def query(self, sql: str, params=None) -> list[tuple]:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def execute_outside_transaction(self, sql: str) -> None:
        """ALTER SYSTEM and the like (`with connection` in query() opens a transaction block)."""
        connection = self.connect()
        try:
            connection.cursor().execute(sql)
        finally:
            connection.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_until(self, sql: str, expected, *, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.query(sql)[0][0]
                if last == expected:
                    return
            except psycopg2.OperationalError as exc:  # still starting up
                last = exc
            time.sleep(0.2)
        raise AssertionError(f"{sql!r} still gives {last!r} after {timeout}s\n{self.log_text()[-3000:]}")


@contextmanager
def database_alias(alias: str, port: int):
    """Points a database alias at the throwaway cluster for the PITR services (they read settings)."""
    entry = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": port,
        "NAME": "postgres",
        "USER": "postgres",
        "PASSWORD": "",
    }
    # With Django's defaults filled in (ATOMIC_REQUESTS...), as for an alias of the settings file: a
    # request served while the alias exists (the admin's table restore) walks every alias.
    connections.configure_settings({DEFAULT_DB_ALIAS: django_settings.DATABASES[DEFAULT_DB_ALIAS], alias: entry})
    django_settings.DATABASES[alias] = entry
    try:
        yield alias
    finally:
        del django_settings.DATABASES[alias]


def a_moment_between(source, pause: float = 0.5) -> str:
    """A moment of the source's clock strictly between what ran before and what runs after (`pause`
    seconds on each side), as ISO text for --target-time."""
    time.sleep(pause)
    moment = source.query("SELECT clock_timestamp()")[0][0].isoformat()
    time.sleep(pause)
    return moment


def wait_archived(cluster, wal_name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last, failed = cluster.query("SELECT last_archived_wal, failed_count FROM pg_stat_archiver")[0]
        if last is not None and last >= wal_name:
            return
        time.sleep(0.2)
    raise AssertionError(f"{wal_name} not archived (last {last}, {failed} failures)\n{cluster.log_text()[-3000:]}")


def switch_wal_and_wait(cluster) -> str:
    name = cluster.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    wait_archived(cluster, name)
    return name


class ClusterFactory:
    """Makes clusters in one postgres-owned temporary folder; `close` stops them and removes it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dbops-pitr-"))
        self.root.chmod(0o755)
        shutil.chown(self.root, DB_OWNER, DB_OWNER) if os.geteuid() == 0 else None
        self.archive_dir = self.root / "archive"  # BACKUP_DIR of the test and of the servers' commands
        self.archive_dir.mkdir(mode=0o755)
        shutil.chown(self.archive_dir, DB_OWNER, DB_OWNER) if os.geteuid() == 0 else None
        self.python, python_env = server_python()
        # What archive_wal / restore_wal need when the server runs them: storage settings, no secrets.
        self.env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "BACKUP_DIR": str(self.archive_dir),
            "PITR_STORAGE": "local",
            "DJANGO_SECRET_KEY": "throwaway-cluster-test",
            "SQLITE_PATH": str(self.root / "unused.sqlite3"),
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "WARNING",
            **python_env,
        }
        self.clusters: list[Cluster] = []

    def new(self, name: str) -> Cluster:
        cluster = Cluster(self.root / name, unused_port(), self.env)
        self.clusters.append(cluster)
        return cluster

    def archiving_source(self, name: str = "source", *, archive_command: str | None = None) -> Cluster:
        """A started cluster whose archive_command is our archive_wal (or the given one)."""
        command = archive_command or pitr_archive_command(python=self.python)
        cluster = self.new(name)
        cluster.initdb(wal_level="replica", archive_mode="on", archive_command="'" + command.replace("'", "''") + "'")
        self._wal_folder_for_the_server(cluster)
        cluster.start()
        return cluster

    def _wal_folder_for_the_server(self, cluster: Cluster) -> None:
        """The server (the postgres OS user) archives into pitr/<id>/wal while this test process (root)
        stores base backups under pitr/<id>/base: whichever writes first would make pitr/<id> its own, so
        the cluster's folders are made for the server before it starts (an installation gives both one user)."""
        folder = self.archive_dir
        for part in wal_prefix(cluster_id_from_data_dir(cluster.data_dir)).split("/"):
            folder = folder / part
            folder.mkdir(mode=0o755, exist_ok=True)
            shutil.chown(folder, DB_OWNER, DB_OWNER) if os.geteuid() == 0 else None

    def lend_environment(self, monkeypatch, settings) -> None:
        """Servers this test process starts itself (verification's scratch cluster) run restore_wal
        like the factory's servers: same interpreter, same storage environment."""
        settings.DBOPS = {**getattr(settings, "DBOPS", {}), "PITR_PYTHON": self.python}
        for name, value in self.env.items():
            if name != "PATH":
                monkeypatch.setenv(name, value)

    def adopt(self, data_dir: Path) -> Cluster:
        cluster = Cluster(data_dir, unused_port(), self.env)
        self.clusters.append(cluster)
        return cluster

    def close(self) -> None:
        for cluster in reversed(self.clusters):
            cluster.stop()
        # An archive_command child can outlive an immediate stop by a moment and still write files.
        for _ in range(50):
            shutil.rmtree(self.root, ignore_errors=True)
            if not self.root.exists():
                return
            time.sleep(0.1)


@pytest.fixture(params=["local", "s3"])
def pitr_clusters(request, settings):
    """Throwaway clusters whose archive goes to local storage, or to a fresh bucket on the S3 server."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {PG_BIN} (set PG_BIN).")
    factory = ClusterFactory()
    storages = dict(settings.STORAGES)
    storages["backups"] = {**storages["backups"], "OPTIONS": {**storages["backups"]["OPTIONS"]}}
    storages["backups"]["OPTIONS"]["location"] = factory.archive_dir
    settings.STORAGES = storages
    settings.BACKUP_DIR = factory.archive_dir
    settings.PITR_STORAGE = request.param
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        # moto's dummy credentials; real ones would come from the server's service environment the same way
        factory.env.update(
            PITR_STORAGE="s3",
            S3_BACKUP_BUCKET=bucket,
            S3_ENDPOINT_URL=os.environ["S3_ENDPOINT_URL"],
            AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        )
    try:
        yield factory
    finally:
        factory.close()
