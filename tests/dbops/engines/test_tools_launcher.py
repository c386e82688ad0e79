"""The launcher of the client tools: a child started through it dies when its parent is SIGKILLed;
a plain subprocess (what the tools were before) outlives it. Real processes, real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from dbops.engines.postgresql.tools import child_popen, dies_with_parent
from tests.faults.observe import alive, wait_for
from tests.paths import ROOT

PARENT = """
import subprocess, sys, time
from dbops.engines.postgresql.tools import child_popen
start = child_popen if sys.argv[1] == "launcher" else subprocess.Popen
child = start(["sleep", "300"])
print(child.pid, flush=True)
time.sleep(300)
"""


def parent_with_a_child(how: str) -> tuple[subprocess.Popen, int]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, how], cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    return parent, int(parent.stdout.readline())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_child_of_the_launcher_dies_with_its_killed_parent():
    assert dies_with_parent()
    parent, child_pid = parent_with_a_child("launcher")
    parent.kill()
    parent.wait()
    wait_for(lambda: not alive(child_pid), what="the child to die with its parent", timeout=10)


def test_a_plain_subprocess_outlives_its_killed_parent():
    # What the launcher fixes: without it, a killed restore's pg_restore goes on loading.
    parent, child_pid = parent_with_a_child("plain")
    parent.kill()
    parent.wait()
    try:
        assert alive(child_pid)
    finally:
        os.kill(child_pid, signal.SIGKILL)


WORKERS_PARENT = """
import time
from dbops.engines.postgresql.tools import child_popen
child_popen(["sh", "-c", "sleep 300 & echo $!; sleep 300 & echo $!; wait"], with_workers=True)
time.sleep(300)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_with_workers_the_processes_the_child_forks_die_too():
    # pg_restore --jobs forks its workers; the kernel's parent-death signal reaches only the direct child.
    parent = subprocess.Popen([sys.executable, "-c", WORKERS_PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    workers = [int(parent.stdout.readline()), int(parent.stdout.readline())]
    assert all(alive(pid) for pid in workers)
    parent.kill()
    parent.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), what="the child's own children to die", timeout=10)


def test_the_launcher_runs_commands_like_subprocess():
    process = child_popen(
        ["sh", "-c", "echo out; echo err >&2; exit 3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = process.communicate(timeout=30)
    assert (process.returncode, stdout, stderr) == (3, b"out\n", b"err\n")
