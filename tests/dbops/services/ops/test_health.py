"""health_check, its command and /health/ against the real PostgreSQL, Redis, moto S3 and a real
celery worker. Unreachable servers are closed loopback ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from dbops.models import BackupRecord
from dbops.services.ops import health
from dbops.services.ops.health import health_cache_clear, health_check
from tests.commands import run_command
from tests.dbops.commandline import ROOT, run_manage
from tests.ports import unused_port

REDIS_PORT = os.environ.get("REDIS_PORT", "56379")
# A Redis database of its own: workers of other test runs on db 0 must not answer our pings.
PRIVATE_BROKER = f"redis://127.0.0.1:{REDIS_PORT}/13"


def record(*, finished_hours_ago: float | None, verified_hours_ago: float | None = None, status="succeeded"):
    now = timezone.now()
    finished = now - timedelta(hours=finished_hours_ago) if finished_hours_ago is not None else None
    return BackupRecord.objects.create(
        status=status,
        started_at=(finished or now) - timedelta(minutes=5),
        finished_at=finished,
        engine="postgresql",
        database_name="x",
        format=BackupRecord.Format.CUSTOM,
        verification_status="passed" if verified_hours_ago is not None else "never",
        verified_at=now - timedelta(hours=verified_hours_ago) if verified_hours_ago is not None else None,
    )


@pytest.fixture(autouse=True)
def no_cached_report():
    """/health/ keeps its report per process: every test starts (and leaves) without one."""
    health_cache_clear()
    yield
    health_cache_clear()


@pytest.fixture
def probes(settings, backup_dir):
    """Short timeouts, a private broker, a little free disk required."""
    from dbops.conf import celery_app

    app = celery_app()
    settings.HEALTH_TIMEOUT_SECONDS = 1.0
    settings.HEALTH_MIN_FREE_DISK_MB = 1
    settings.REDIS_URL = PRIVATE_BROKER
    settings.CELERY_BROKER_URL = PRIVATE_BROKER
    yield settings
    # celery's conf reads Django's settings live, so the pools made during the test (the pings' producer
    # pool) hold connections to the private broker: a task sent later in this process
    # (test_profiling_celery_worker's) went to database 13, where no worker listens. Dropped, the pools
    # are made again from the app's broker_url at their next use (app.close() resets the producer pool
    # only when the connection pool exists).
    app.close()
    app.amqp._producer_pool = None


@pytest.fixture
def celery_worker(probes):
    """A real celery worker process on the private broker, stopped after the test."""
    name = f"health-{uuid.uuid4().hex[:8]}@%h"
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "multipult", "-b", PRIVATE_BROKER, "worker", "--pool", "solo",
            "-n", name, "--without-gossip", "--without-mingle", "-l", "WARNING",
        ],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        from multipult.celery import app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with app.connection_for_write(PRIVATE_BROKER) as broker:
                if app.control.ping(timeout=0.5, limit=1, connection=broker):
                    break
        else:
            pytest.fail("the celery worker did not answer within 60s")
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@pytest.mark.django_db
@pytest.mark.celery_worker
@pytest.mark.slow
def test_healthy_when_every_server_answers_and_backups_are_fresh(celery_worker, s3_bucket):
    record(finished_hours_ago=1, verified_hours_ago=2)
    report = health_check()

    statuses = {check.name: check.status for check in report.checks}
    assert statuses == dict.fromkeys(statuses, "ok"), report.as_dict()
    assert report.status == "ok" and report.exit_code == 0
    checks = report.as_dict()["checks"]
    assert checks["database"]["details"]["latency_ms"] >= 0
    assert checks["celery_workers"]["details"]["workers"]

    assert json.loads(run_command("health_check", "--json"))["status"] == "ok"  # exit 0: no SystemExit


@pytest.mark.django_db
def test_unreachable_redis_and_s3_are_degraded_not_unhealthy(probes, s3_bucket):
    record(finished_hours_ago=1, verified_hours_ago=2)
    port = unused_port()
    probes.REDIS_URL = probes.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    storages = dict(probes.STORAGES)
    storages["backups_s3"] = {
        **storages["backups_s3"],
        "OPTIONS": {**storages["backups_s3"]["OPTIONS"], "endpoint_url": f"http://127.0.0.1:{unused_port()}"},
    }
    probes.STORAGES = storages

    checks = health_check().as_dict()["checks"]
    assert checks["redis"]["status"] == "degraded" and "Connection" in checks["redis"]["message"]
    assert checks["celery_workers"] == {**checks["celery_workers"], "status": "degraded"}
    assert "Redis" in checks["celery_workers"]["message"]
    assert checks["s3"]["status"] == "degraded"
    assert checks["database"]["status"] == "ok"

    with pytest.raises(SystemExit) as exit_info:
        run_command("health_check")
    assert exit_info.value.code == 1


@pytest.mark.django_db
def test_no_celery_worker_answering_is_degraded(probes):
    probes.HEALTH_TIMEOUT_SECONDS = 0.5
    checks = health_check().as_dict()["checks"]
    assert checks["redis"]["status"] == "ok"
    assert checks["celery_workers"]["status"] == "degraded"
    assert "no worker answered" in checks["celery_workers"]["message"]


@pytest.mark.django_db
def test_without_redis_and_s3_those_checks_are_skipped(probes):
    probes.REDIS_URL = None
    probes.STORAGES = {name: value for name, value in probes.STORAGES.items() if name != "backups_s3"}
    checks = health_check().as_dict()["checks"]
    assert checks["redis"]["status"] == checks["celery_workers"]["status"] == checks["s3"]["status"] == "skipped"


@pytest.mark.django_db
def test_backup_ages_are_judged_against_their_thresholds(probes):
    probes.BACKUP_MAX_AGE_HOURS = 26
    probes.VERIFY_MAX_AGE_HOURS = 192
    checks = health_check().as_dict()["checks"]
    assert checks["last_backup"]["message"] == "no successful backup yet"
    assert checks["last_verified_backup"]["status"] == "degraded"

    record(finished_hours_ago=30, verified_hours_ago=200)
    record(finished_hours_ago=1, status="failed")  # a newer failed backup does not count
    record(finished_hours_ago=None, status="running")
    checks = health_check().as_dict()["checks"]
    assert checks["last_backup"]["status"] == "degraded"
    assert "limit 26h" in checks["last_backup"]["message"]
    assert 29.9 < checks["last_backup"]["details"]["age_hours"] < 30.1
    assert checks["last_verified_backup"]["status"] == "degraded"

    record(finished_hours_ago=25, verified_hours_ago=191)
    checks = health_check().as_dict()["checks"]
    assert checks["last_backup"]["status"] == checks["last_verified_backup"]["status"] == "ok"


@pytest.mark.django_db
def test_the_probes_cost_a_fixed_handful_of_queries(probes):
    from tests.queries import queries_on_every_database

    for hours in range(20):
        record(finished_hours_ago=hours, verified_hours_ago=hours)
    with queries_on_every_database() as queries:
        health_check()
    # SELECT 1 and the applied migrations of each database, the last backup, the last verification, the
    # running restore records (interrupted-restore check)
    assert 4 <= len(queries) <= 9, [query["sql"] for query in queries.captured_queries]


@pytest.mark.django_db
def test_too_little_free_disk_is_degraded(probes):
    probes.HEALTH_MIN_FREE_DISK_MB = 10**12
    disk = health_check().as_dict()["checks"]["disk"]
    assert disk["status"] == "degraded" and "below" in disk["message"]


@pytest.mark.django_db
def test_unapplied_migration_is_unhealthy_with_exit_2_and_http_503(probes, client):
    with connection.cursor() as cursor:  # rolled back with the test
        cursor.execute("DELETE FROM django_migrations WHERE app = 'dbops'")
    report = health_check()
    assert report.status == "unhealthy" and report.exit_code == 2
    assert "dbops.0001_initial" in report.as_dict()["checks"]["migrations"]["details"]["pending"]

    with pytest.raises(SystemExit) as exit_info:
        run_command("health_check")
    assert exit_info.value.code == 2
    response = client.get("/health/")
    assert response.status_code == 503 and response.json()["status"] == "unhealthy"


@pytest.mark.django_db
def test_health_endpoint_is_json_200_when_degraded_and_has_no_secrets(probes, client):
    response = client.get("/health/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["status"] == "degraded"  # no backups yet
    assert "no-cache" in response["Cache-Control"]
    body = response.content.decode()
    for secret in (os.environ.get("DB_PASSWORD"), os.environ.get("AWS_SECRET_ACCESS_KEY")):
        assert not secret or secret not in body
    assert client.post("/health/").status_code == 405


def test_unreachable_database_exits_2_and_skips_what_needs_it(tmp_path):
    result = run_manage(
        "health_check", "--json",
        env={"DB_PORT": str(unused_port()), "BACKUP_DIR": str(tmp_path), "HEALTH_TIMEOUT_SECONDS": "0.5"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    checks = json.loads(result.stdout)["checks"]
    assert checks["database"]["status"] == "unhealthy"
    assert checks["migrations"]["status"] == checks["last_backup"]["status"] == "skipped"
    assert os.environ["DB_PASSWORD"] not in result.stdout + result.stderr


# --- /health/ caches its report per process (HEALTH_CACHE_SECONDS) ---------------------------------


@pytest.fixture
def check_calls(monkeypatch):
    """Counts the runs of the real health_check behind /health/ (the probes themselves still run)."""
    calls = []
    real_check = health.health_check

    def counted_check(**kwargs):
        calls.append(threading.current_thread().name)
        return real_check(**kwargs)

    monkeypatch.setattr(health, "health_check", counted_check)
    return calls


@pytest.mark.django_db
def test_within_the_ttl_many_requests_run_the_checks_once(probes, check_calls, client):
    probes.HEALTH_TIMEOUT_SECONDS = 0.3
    probes.HEALTH_CACHE_SECONDS = 60

    responses = [client.get("/health/") for _ in range(10)]

    assert len(check_calls) == 1
    bodies = [response.json() for response in responses]
    assert len({body["checked_at"] for body in bodies}) == 1
    assert all(response.status_code == 200 and int(response["Age"]) >= 0 for response in responses)
    assert all(0 <= body["age_seconds"] < 60 for body in bodies)
    assert bodies[-1]["age_seconds"] >= bodies[0]["age_seconds"]
    assert "no-cache" in responses[-1]["Cache-Control"]  # only this process caches, never a proxy


@pytest.mark.django_db
def test_after_the_ttl_the_checks_run_again(probes, check_calls, client, monkeypatch):
    probes.HEALTH_TIMEOUT_SECONDS = 0.3
    probes.HEALTH_CACHE_SECONDS = 5
    clock = [1000.0]  # the cache's monotonic clock, moved by hand (no sleeping, no timing)
    monkeypatch.setattr(health, "_clock", lambda: clock[0])
    first = client.get("/health/").json()

    clock[0] += 4.0  # still within the TTL: the same report, 4 s old
    within = client.get("/health/")
    assert len(check_calls) == 1
    assert within.json()["checked_at"] == first["checked_at"] and int(within["Age"]) == 4

    clock[0] += 1.5  # past it: computed again
    after = client.get("/health/")
    assert len(check_calls) == 2
    assert after.json()["checked_at"] > first["checked_at"] and int(after["Age"]) == 0


@pytest.mark.django_db
def test_ttl_zero_computes_every_request(probes, check_calls, client):
    probes.HEALTH_TIMEOUT_SECONDS = 0.3
    probes.HEALTH_CACHE_SECONDS = 0

    responses = [client.get("/health/") for _ in range(3)]

    assert len(check_calls) == 3
    assert len({response.json()["checked_at"] for response in responses}) == 3
    assert all(response["Age"] == "0" for response in responses)


@pytest.mark.django_db
def test_the_health_check_command_is_never_cached(probes, check_calls, client):
    probes.HEALTH_TIMEOUT_SECONDS = 0.3
    probes.HEALTH_CACHE_SECONDS = 60
    cached_at = client.get("/health/").json()["checked_at"]

    reports = []
    for _ in range(2):
        out = StringIO()
        with pytest.raises(SystemExit):  # degraded: no backup yet, no worker on the private broker
            run_command("health_check", "--json", stdout=out)
        reports.append(json.loads(out.getvalue()))

    assert len(check_calls) == 1  # the command calls health_check directly, never the cache
    assert all(report["checked_at"] > cached_at for report in reports)
    assert reports[0]["checked_at"] != reports[1]["checked_at"]
    assert client.get("/health/").json()["checked_at"] == cached_at  # and leaves the cache alone


class ArrivalCountingLock:
    """The cache's real lock, counting the threads that reached it (so a test knows they all wait)."""

    def __init__(self):
        self._lock, self._count_lock, self.arrived = threading.Lock(), threading.Lock(), 0

    def __enter__(self):
        with self._count_lock:
            self.arrived += 1
        self._lock.acquire()
        return self

    def __exit__(self, *exc_info):
        self._lock.release()


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_during_a_refresh_share_one_computation(probes, check_calls, monkeypatch):
    probes.HEALTH_TIMEOUT_SECONDS = 0.3
    probes.HEALTH_CACHE_SECONDS = 60
    threads_count = 8
    lock = ArrivalCountingLock()
    monkeypatch.setattr(health, "_refresh_lock", lock)
    clock = [1000.0]
    monkeypatch.setattr(health, "_clock", lambda: clock[0])
    counted_check = health.health_check

    def slow_first_check(**kwargs):
        # Hold the refresh until every request has missed the cache and queued on the lock.
        deadline = time.monotonic() + 30
        while lock.arrived < threads_count and time.monotonic() < deadline:
            time.sleep(0.01)
        clock[0] += 90  # and let the probes take longer than the TTL: the waiters still share them
        return counted_check(**kwargs)

    monkeypatch.setattr(health, "health_check", slow_first_check)
    bodies, errors = [], []

    def poll():
        try:
            bodies.append(Client().get("/health/").json())
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=poll, name=f"poll-{n}") for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors and len(bodies) == threads_count
    assert lock.arrived == threads_count  # all of them missed the cache and waited for the refresh
    assert len(check_calls) == 1
    assert len({body["checked_at"] for body in bodies}) == 1
