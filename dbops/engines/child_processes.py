"""The one launcher for long-running client tools (pg_dump, pg_restore, psql, pg_basebackup).

On Linux every child gets PR_SET_PDEATHSIG(SIGKILL): when the Python process that started it dies,
even by SIGKILL, the kernel kills the child too, so no pg_restore keeps loading for a dead restore.
A tool that forks workers of its own (pg_restore --jobs) is started `with_workers`: under GNU
coreutils' `timeout 0` (no time limit), which gets SIGTERM on our death and passes it to its whole
process group, workers included (the kernel's signal reaches only the direct child). Elsewhere the
children are started as plain subprocesses.

The kernel sends the signal when the *thread* that started the child ends: start children from the
thread that waits for them (every caller here does).
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
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


def _die_with_parent(parent_pid: int, death_signal: int) -> Callable[[], None]:
    def in_child() -> None:  # runs in the child between fork and exec
        _prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), death_signal)

    return in_child


@functools.cache
def _group_supervisor() -> str | None:
    """GNU `timeout`, which passes the signals it gets on to its process group; None when absent."""
    path = shutil.which("timeout")
    if path is None:
        return None
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return path if "GNU coreutils" in version.stdout else None


def _launch(args: Sequence[str], options: dict[str, Any], *, with_workers: bool) -> tuple[list[str], dict[str, Any]]:
    if _prctl is None:
        return list(args), options
    if "preexec_fn" in options:
        raise ValueError("child_popen sets preexec_fn itself")
    supervisor = _group_supervisor() if with_workers else None
    if supervisor is None:
        return list(args), {**options, "preexec_fn": _die_with_parent(os.getpid(), signal.SIGKILL)}
    # SIGTERM, not SIGKILL: `timeout` must live to pass it on to the tool and the tool's workers.
    return [supervisor, "0", *args], {**options, "preexec_fn": _die_with_parent(os.getpid(), signal.SIGTERM)}


def child_popen(args: Sequence[str], *, with_workers: bool = False, **options: Any) -> subprocess.Popen:
    """subprocess.Popen whose child (and with `with_workers`, the processes it forks) dies with this process."""
    args, options = _launch(args, options, with_workers=with_workers)
    return subprocess.Popen(args, **options)


def child_run(args: Sequence[str], *, with_workers: bool = False, **options: Any) -> subprocess.CompletedProcess:
    """subprocess.run whose child (and with `with_workers`, the processes it forks) dies with this process."""
    args, options = _launch(args, options, with_workers=with_workers)
    return subprocess.run(args, **options)


def dies_with_parent() -> bool:
    """Whether children started here are killed with their parent on this platform."""
    return _prctl is not None
