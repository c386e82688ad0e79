"""Loopback ports for tests: a server's port to listen on, or one nothing listens on.

Asking the kernel for port 0 and releasing it races: until the caller's server listens, another xdist
worker (or another test run on this machine) can be given the same port, and any client connection can
take it as its ephemeral port. So a port here comes from below the kernel's ephemeral range, is checked
free with a bind, and is reserved for as long as this process lives by a lock on its byte of one shared
file: every test process on the machine skips the ports another one holds, whether or not it listens yet.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from pathlib import Path

# Below Linux's default ephemeral ports (32768-60999): the kernel gives none of these to a client socket.
PORT_RANGE = range(20_000, 32_768)
LOCK_FILE = Path(tempfile.gettempdir()) / "multipult-test-ports.lock"

_lock_fd: int | None = None
_given: set[int] = set()  # a process's own locks do not stop it, so it remembers what it handed out


def unused_port() -> int:
    """A loopback port nothing listens on, which no other test process gets while this one lives."""
    global _lock_fd
    if _lock_fd is None:
        _lock_fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)  # kept open: closing it drops every lock
    for port in PORT_RANGE:
        if port in _given:
            continue
        try:
            fcntl.lockf(_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
        except OSError:
            continue  # another test process holds it
        if _bindable(port):
            _given.add(port)
            return port
        fcntl.lockf(_lock_fd, fcntl.LOCK_UN, 1, port)
    raise RuntimeError(f"no free loopback port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def _bindable(port: int) -> bool:
    # Without SO_REUSEADDR: a listener, or a socket still closing on the port, makes it fail.
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
