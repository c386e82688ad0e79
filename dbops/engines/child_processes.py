"""The one launcher for long-running client tools (pg_dump, pg_restore, psql, pg_basebackup).

On Linux every child gets PR_SET_PDEATHSIG(SIGKILL): when the Python process that started it dies,
even by SIGKILL, the kernel kills the child too, so no pg_restore keeps loading for a dead restore.
Elsewhere the children are started as plain subprocesses.

The kernel sends the signal when the *thread* that started the child ends: start children from the
thread that waits for them (every caller here does).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # a libc without prctl: children still start, without the guarantee
        return None


_prctl = _libc_prctl()  # resolved once here, so the child only makes one foreign call before exec


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def in_child() -> None:  # runs in the child between fork and exec
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return in_child


def _launch_options(options: dict[str, Any]) -> dict[str, Any]:
    if _prctl is None:
        return options
    if "preexec_fn" in options:
        raise ValueError("child_popen sets preexec_fn itself")
    return {**options, "preexec_fn": _die_with_parent(os.getpid())}


def child_popen(args: Sequence[str], **options: Any) -> subprocess.Popen:
    """subprocess.Popen whose child dies with this process (Linux)."""
    return subprocess.Popen(args, **_launch_options(options))


def child_run(args: Sequence[str], **options: Any) -> subprocess.CompletedProcess:
    """subprocess.run whose child dies with this process (Linux)."""
    return subprocess.run(args, **_launch_options(options))


def dies_with_parent() -> bool:
    """Whether children started here are killed with their parent on this platform."""
    return _prctl is not None
