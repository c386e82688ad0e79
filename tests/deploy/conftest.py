"""The web process as it is deployed: gunicorn with gunicorn.conf.py (or runserver), DEBUG unset, a
child process on pytest's test databases, serving the static files collectstatic wrote (WhiteNoise)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dbops.admin.conftest import superuser  # noqa: F401  (a fixture the screens log in with)
from tests.dbops.commandline import child_database_env, child_environment
from tests.paths import ROOT
from tests.ports import unused_port

SERVERS = {
    "gunicorn": lambda port: [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py",
                              "--bind", f"127.0.0.1:{port}", "--workers", "2"],
    "runserver": lambda port: [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
}  # fmt: skip


@dataclass
class WebServer:
    url: str
    process: subprocess.Popen
    log: Path

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:  # noqa: S310  (loopback)
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


def _wait_until_answering(server: WebServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"the web server exited with {server.process.returncode}:\n{server.log.read_text()[-4000:]}")
        with contextlib.suppress(OSError):
            server.get("/admin/login/")
            return
        time.sleep(0.3)
    pytest.fail(f"the web server did not answer within {timeout:.0f} s:\n{server.log.read_text()[-4000:]}")


@pytest.fixture
def start_web_server(transactional_db, tmp_path) -> Iterator[Callable[[str], WebServer]]:
    """Starts `gunicorn` or `runserver` (by name) with DEBUG unset on the test databases; each is killed
    with its process group at teardown. The tests' rows are committed (transactional_db), so it sees them."""

    started: list[WebServer] = []

    def start(kind: str) -> WebServer:
        port = unused_port()
        log = tmp_path / f"{kind}.log"
        environment = child_environment({"DEBUG": None, **child_database_env(), "LOG_FORMAT": "text"})
        with log.open("wb") as handle:
            process = subprocess.Popen(
                SERVERS[kind](port), cwd=ROOT, env=environment, stdout=handle, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        server = WebServer(url=f"http://127.0.0.1:{port}", process=process, log=log)
        started.append(server)
        _wait_until_answering(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGTERM)
            try:
                server.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait(timeout=20)


@pytest.fixture
def gunicorn_server(start_web_server) -> WebServer:
    return start_web_server("gunicorn")
