"""Task profiling on a real `celery -A multipult worker` (Redis broker), on pytest's test database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from multipult.core.models import User
from tests.dbops.commandline import child_database_env
from tests.dbops.instrumentation.profiled_tasks import profiled_user_count
from tests.paths import ROOT

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for(condition, *, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    pytest.fail(f"timed out; worker log:\n{log.read_text()[-4000:]}")


@pytest.fixture
def worker(tmp_path):
    if not os.environ.get("REDIS_HOST"):
        pytest.fail("REDIS_HOST is not set; start the services with `make services`.")
    queue = f"issue5-profiling-{uuid.uuid4().hex[:8]}"  # our own queue: no other worker takes the task
    log = tmp_path / "worker.log"
    env = os.environ | {
        **child_database_env(),
        "QUERY_PROFILING_ENABLED": "true",
        "LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "multipult", "worker", "--pool=solo", "--loglevel=INFO",
             f"--queues={queue}", "--include=tests.dbops.instrumentation.profiled_tasks", f"--hostname={queue}@%h"],
            cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: b"ready." in log.read_bytes(), timeout=90, log=log)
        yield queue, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_a_task_on_a_real_worker_logs_its_query_summary(worker):
    queue, log = worker
    User.objects.create(username="worker-a")
    User.objects.create(username="worker-b", is_active=False)

    assert profiled_user_count.apply_async(queue=queue).get(timeout=60) == 3

    summary = "query summary for task:tests.profiled_user_count: 2 queries"
    wait_for(lambda: summary in log.read_text(), timeout=30, log=log)
