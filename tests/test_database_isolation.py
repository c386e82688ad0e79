"""The suite's own isolation: a row that a test commits to the operations database outside its
per-test transaction (a thread's or a child process's own connection, as a task run by a worker thread
or a command in a child does) is not seen by the tests after it.

The two tests run in this order in one worker (--dist loadgroup keeps a module on one worker)."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connections
from django.utils import timezone

from dbops.models import TaskRun

pytestmark = pytest.mark.django_db

# Set by the first test: the task run it committed, for the second to look for.
committed_task_ids: list[str] = []


def test_a_task_run_committed_by_another_connection_outlives_this_tests_transaction():
    task_id = f"committed-elsewhere-{uuid.uuid4().hex[:8]}"

    def commit_on_own_connection():
        try:
            TaskRun.objects.create(task_id=task_id, task_name="isolation_probe", started_at=timezone.now())
        finally:
            connections.close_all()  # this thread's connections

    writer = threading.Thread(target=commit_on_own_connection)
    writer.start()
    writer.join(60)

    # Committed: visible here, and not undone by this test's rollback
    assert TaskRun.objects.filter(task_id=task_id).exists()
    committed_task_ids.append(task_id)


def test_the_next_test_sees_no_task_run_an_earlier_test_committed():
    if not committed_task_ids:
        pytest.skip("needs the test before it in the same run")
    left_over = list(TaskRun.objects.values_list("task_id", flat=True))
    assert left_over == [], f"task runs committed by earlier tests: {left_over}"


def test_under_loadgroup_this_module_runs_whole_on_one_worker(request):
    # What the two tests above rely on under -n 2 --dist loadgroup: xdist appends the group to the id it schedules by.
    if not getattr(request.config.option, "loadgroup", False):  # set in each xdist worker of --dist loadgroup
        pytest.skip("not distributed by group")
    assert request.node.nodeid.endswith("@tests/test_database_isolation.py")
