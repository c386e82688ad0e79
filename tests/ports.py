"""Loopback ports for tests: a server's port to listen on, or one nothing listens on."""

from __future__ import annotations

import socket


def unused_port() -> int:
    """A loopback port nobody listens on (bound once here, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
