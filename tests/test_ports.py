"""tests/ports.py: a port is free, outside the kernel's ephemeral range, and never handed to two test
processes at once (two xdist workers, or two runs on one machine), whether or not its holder listens yet."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ports
from tests.paths import ROOT
from tests.ports import unused_port

HOLDER = """
import sys
from tests.ports import unused_port

print(" ".join(str(unused_port()) for _ in range(int(sys.argv[1]))), flush=True)
sys.stdin.read()  # holds its ports until the test closes stdin
"""


def test_the_port_is_outside_the_ephemeral_range_and_nothing_listens_on_it():
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    port = unused_port()

    assert not low <= port <= high, f"{port} is an ephemeral port ({low}-{high}): a client socket may take it"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_another_process_is_never_given_a_port_this_one_holds():
    # Given another test process (as another xdist worker) holding ports it does not listen on
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "20"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        held = {int(port) for port in holder.stdout.readline().split()}
        # When this process asks for ports
        mine = {unused_port() for _ in range(20)}
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)

    # Then none of them is one the other process holds
    assert len(held) == 20 and len(mine) == 20
    assert held.isdisjoint(mine), sorted(held & mine)


def test_a_port_something_listens_on_is_skipped():
    # The lowest port of the range this process could bind, listened on without a reservation
    listener = socket.socket()
    for port in ports.PORT_RANGE:
        if port in ports._given:
            continue
        try:
            listener.bind(("127.0.0.1", port))
            break
        except OSError:
            continue
    listener.listen(1)
    try:
        assert unused_port() != listener.getsockname()[1]
    finally:
        listener.close()
