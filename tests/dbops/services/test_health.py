"""health_check, its command and /health/ against the real PostgreSQL, Redis, moto S3 and a real
celery worker. Unreachable servers are closed loopback ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from dbops.models import BackupRecord
from dbops.services.health import health_check
from tests.dbops.commandline import ROOT, run_manage

REDIS_PORT = os.environ.get("REDIS_PORT", "56379")
# A Redis database of its own: workers of other test runs on db 0 must not answer our pings.
PRIVATE_BROKER = f"redis://127.0.0.1:{REDIS_PORT}/13"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


@pytest.fixture
def probes(settings, backup_dir):
    """Short timeouts, a private broker, a little free disk required."""
    settings.HEALTH_TIMEOUT_SECONDS = 1.0
    settings.HEALTH_MIN_FREE_DISK_MB = 1
    settings.REDIS_URL = PRIVATE_BROKER
    settings.CELERY_BROKER_URL = PRIVATE_BROKER
    return settings


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

    out = StringIO()
    call_command("health_check", "--json", stdout=out)  # exit 0: no SystemExit
    assert json.loads(out.getvalue())["status"] == "ok"


@pytest.mark.django_db
def test_unreachable_redis_and_s3_are_degraded_not_unhealthy(probes, s3_bucket):
    record(finished_hours_ago=1, verified_hours_ago=2)
    port = closed_port()
    probes.REDIS_URL = probes.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    storages = dict(probes.STORAGES)
    storages["backups_s3"] = {
        **storages["backups_s3"],
        "OPTIONS": {**storages["backups_s3"]["OPTIONS"], "endpoint_url": f"http://127.0.0.1:{closed_port()}"},
    }
    probes.STORAGES = storages

    checks = health_check().as_dict()["checks"]
    assert checks["redis"]["status"] == "degraded" and "Connection" in checks["redis"]["message"]
    assert checks["celery_workers"] == {**checks["celery_workers"], "status": "degraded"}
    assert "Redis" in checks["celery_workers"]["message"]
    assert checks["s3"]["status"] == "degraded"
    assert checks["database"]["status"] == "ok"

    with pytest.raises(SystemExit) as exit_info:
        call_command("health_check", stdout=StringIO())
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
def test_the_probes_cost_a_fixed_handful_of_queries(probes, django_assert_max_num_queries):
    for hours in range(20):
        record(finished_hours_ago=hours, verified_hours_ago=hours)
    with django_assert_max_num_queries(6):  # SELECT 1, applied migrations, last backup, last verification
        health_check()


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
        call_command("health_check", stdout=StringIO())
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
        env={"DB_PORT": str(closed_port()), "BACKUP_DIR": str(tmp_path), "HEALTH_TIMEOUT_SECONDS": "0.5"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    checks = json.loads(result.stdout)["checks"]
    assert checks["database"]["status"] == "unhealthy"
    assert checks["migrations"]["status"] == checks["last_backup"]["status"] == "skipped"
    assert os.environ["DB_PASSWORD"] not in result.stdout + result.stderr
