"""SummaryLogWriter: a request profile's records written off the request thread, none of them lost."""

from __future__ import annotations

import contextvars
import logging
import subprocess
import sys
import textwrap
import threading

import pytest
from django.http import JsonResponse
from django.urls import path

from dbops.instrumentation.profiling import ProfileSummary, SummaryLogWriter, profile_logs_drain
from multipult.core.models import User
from tests.paths import ROOT

request_tag: contextvars.ContextVar[str | None] = contextvars.ContextVar("test_request_tag", default=None)


def tagged_view(request):
    request_tag.set(request.GET["tag"])  # what a project's request-id middleware would do
    return JsonResponse({"users": User.objects.count()})


urlpatterns = [path("tagged", tagged_view)]


def summary(source: str) -> ProfileSummary:
    return ProfileSummary(source=source, count=0, total_ms=0.0, slowest=None, duplicates=0)


def summary_records(caplog, source: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if getattr(record, "query_summary", {}).get("source") == source]


class TagFilter(logging.Filter):
    def filter(self, record):
        record.request_tag = request_tag.get()
        return True


@pytest.fixture
def profiled_client(settings, client):
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.QUERY_PROFILING_ENABLED = True
    settings.SLOW_QUERY_THRESHOLD_MS = 10_000
    tag_filter = TagFilter()
    logging.getLogger("dbops.profiling").addFilter(tag_filter)
    yield client
    logging.getLogger("dbops.profiling").removeFilter(tag_filter)


@pytest.mark.urls(__name__)
@pytest.mark.django_db
@pytest.mark.parametrize("background", [True, False])
def test_a_request_summary_is_written_by_the_thread_in_the_request_context(
    profiled_client, settings, caplog, background
):
    settings.DBOPS = {**settings.DBOPS, "PROFILING_LOG_IN_BACKGROUND": background}
    caplog.set_level(logging.INFO, logger="dbops.profiling")
    token = request_tag.set("outside")
    try:
        assert profiled_client.get("/tagged", {"tag": "request-7"}).status_code == 200
        assert profile_logs_drain()
    finally:
        request_tag.reset(token)
    (record,) = summary_records(caplog, "GET /tagged")
    assert record.query_summary["queries"] == 1
    assert record.threadName == ("dbops-profile-log" if background else threading.current_thread().name)
    # a filter reading the request's context variables sees the request's values on the writer's thread too
    assert record.request_tag == "request-7"


class Gate(logging.Filter):
    """Holds the writer's thread on its first record until opened."""

    def __init__(self):
        super().__init__()
        self.reached, self.opened = threading.Event(), threading.Event()

    def filter(self, record):
        if record.threadName == "dbops-profile-log" and not self.reached.is_set():
            self.reached.set()
            assert self.opened.wait(10)
        return True


def test_a_full_queue_logs_inline_and_keeps_every_record(caplog):
    caplog.set_level(logging.INFO, logger="dbops.profiling")
    writer, gate = SummaryLogWriter(max_pending=1), Gate()
    logging.getLogger("dbops.profiling").addFilter(gate)
    try:
        writer.submit(summary("first"), None)
        assert gate.reached.wait(10)  # the thread holds "first"; the queue has room for one more
        writer.submit(summary("second"), None)
        writer.submit(summary("third"), None)  # queue full: written here, now
        assert [r.query_summary["source"] for r in caplog.records] == ["third"]
        gate.opened.set()
        assert writer.drain()
    finally:
        logging.getLogger("dbops.profiling").removeFilter(gate)
    threads = {record.query_summary["source"]: record.threadName for record in caplog.records}
    assert threads == {"third": threading.current_thread().name, "first": "dbops-profile-log",
                       "second": "dbops-profile-log"}  # fmt: skip


def test_a_failing_filter_does_not_stop_the_thread(caplog):
    caplog.set_level(logging.INFO, logger="dbops.profiling")
    writer = SummaryLogWriter()

    class FailOnce(logging.Filter):
        failed = False

        def filter(self, record):
            if not self.failed and getattr(record, "query_summary", {}).get("source") == "broken":
                self.failed = True
                raise RuntimeError("a project's filter failed")
            return True

    failing = FailOnce()
    logging.getLogger("dbops.profiling").addFilter(failing)
    try:
        writer.submit(summary("broken"), None)
        writer.submit(summary("after"), None)
        assert writer.drain()
    finally:
        logging.getLogger("dbops.profiling").removeFilter(failing)
    assert [r.query_summary["source"] for r in caplog.records if hasattr(r, "query_summary")] == ["after"]
    assert any("query profile of broken could not be logged" in r.getMessage() for r in caplog.records)


def run_child(code: str) -> subprocess.CompletedProcess:
    prelude = """
        import logging, os, sys, time
        import django
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multipult.settings")
        django.setup()
        from dbops.instrumentation.profiling import ProfileSummary, QueryProfile, profile_logs_drain

        class Slow(logging.Filter):  # the record reaches the handler only after the caller has moved on
            def filter(self, record):
                time.sleep(0.5)
                return True

        logging.getLogger("dbops.profiling").addFilter(Slow())
        logging.getLogger("dbops.profiling").setLevel(logging.INFO)
    """
    script = textwrap.dedent(prelude) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_records_still_queued_at_exit_are_written_before_the_process_ends():
    result = run_child("""
        with QueryProfile("exit-check", log_in_background=True):
            pass
        sys.exit(0)
    """)
    assert result.returncode == 0, result.stderr
    assert "query summary for exit-check: 0 queries" in result.stderr


def test_a_forked_child_writes_its_own_records():
    result = run_child("""
        with QueryProfile("parent", log_in_background=True):
            pass  # the parent's writer thread is running now
        assert profile_logs_drain()
        child = os.fork()
        if child == 0:
            with QueryProfile("child", log_in_background=True):
                pass
            drained = profile_logs_drain(5)
            print("child drained", drained, flush=True)
            sys.stderr.flush()
            os._exit(0 if drained else 3)
        _pid, status = os.waitpid(child, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "child drained True" in result.stdout
    assert "query summary for child: 0 queries" in result.stderr
