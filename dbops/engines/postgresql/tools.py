"""The PostgreSQL programs (pg_dump, pg_restore, psql, pg_basebackup, pg_ctl...): found one way, run with
an environment built one way, their failures told in one line.

Finding: PATH first, then `pg_config --bindir`, then the newest /usr/lib/postgresql/<major>/bin (Debian
and Ubuntu install the server programs, and some client ones such as pg_verifybackup, only there).

The child's environment holds only what a PostgreSQL program needs: PATH, HOME, locale, TZ, TMPDIR and
the PG* variables set here (the password as PGPASSWORD, never on the command line). Nothing else of our
own environment (DB_PASSWORD, AWS_*, BACKUP_ENCRYPTION_KEY*, DJANGO_SECRET_KEY...) reaches it.

Starting: every long-running program goes through one launcher (child_popen/child_run). On Linux each
child gets PR_SET_PDEATHSIG(SIGKILL): when the Python process that started it dies, even by SIGKILL, the
kernel kills the child too, so no pg_restore keeps loading for a dead restore. A program that forks
workers of its own (pg_restore --jobs) is started `with_workers`: under GNU coreutils' `timeout 0` (no
time limit), which gets SIGTERM on our death and passes it to its whole process group, workers included
(the kernel's signal reaches only the direct child). The kernel sends it when the *thread* that started
the child ends: start children from the thread that waits for them (every caller here does). Elsewhere
than Linux the children are plain subprocesses.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from dbops.exceptions import ConfigurationError

# Debian/Ubuntu layout of the versioned server packages (postgresql-<major>).
SERVER_BIN_GLOB = "/usr/lib/postgresql/*/bin"
# Programs of the server package; every other one comes with the client package.
SERVER_PROGRAMS = frozenset(
    {"postgres", "pg_ctl", "initdb", "pg_controldata", "pg_waldump", "pg_resetwal", "pg_checksums", "pg_rewind"}
)
# What a child may inherit from our environment: the system basics, never an application setting.
INHERITED = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR")
INHERITED_PREFIXES = ("LC_",)
# Non-secret libpq client settings an operator may set for every PostgreSQL client (psycopg2 reads them
# too, so the programs connect the way Django does). PGPASSWORD is not one of them: it comes from settings.
INHERITED_LIBPQ = (
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
    "PGSSLMODE",
    "PGPASSFILE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGGSSENCMODE",
    "PGTARGETSESSIONATTRS",
)
# Django database OPTIONS (libpq keywords) -> the environment variable a PostgreSQL program reads.
OPTION_VARIABLES = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "gssencmode": "PGGSSENCMODE",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
}
CONNECT_TIMEOUT_SECONDS = 10
FAILURE_LIMIT = 4000  # characters of a program's error output kept in the message
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ToolNotFound(ConfigurationError):
    """A PostgreSQL program is installed nowhere we look."""


def tool_path(name: str, *, major: str | None = None) -> str | None:
    """Where the PostgreSQL program `name` is, or None: PATH, `pg_config --bindir`, newest Debian bin dir.

    With `major`, that major version's Debian folder comes first (a server program that runs on a data
    directory must be of the directory's own major version)."""
    if major:
        exact = Path(SERVER_BIN_GLOB.replace("*", major)) / name
        if exact.is_file() and os.access(exact, os.X_OK):
            return str(exact)
    found = shutil.which(name)
    if found:
        return found
    for folder in (_pg_config_bindir(shutil.which("pg_config")), *_server_bin_dirs(SERVER_BIN_GLOB)):
        if folder and os.access(Path(folder) / name, os.X_OK) and (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    return None


def tool_require(name: str, *, error: type[Exception] = ToolNotFound, major: str | None = None) -> str:
    """The path of the PostgreSQL program `name`; raises `error` naming the package to install."""
    found = tool_path(name, major=major)
    if found is None:
        raise error(tool_missing_message(name))
    return found


def tool_missing_message(name: str) -> str:
    package, kind = ("postgresql", "server") if name in SERVER_PROGRAMS else ("postgresql-client", "client")
    return (
        f"{name} not found on PATH, in `pg_config --bindir` or in {SERVER_BIN_GLOB}: install the PostgreSQL "
        f"{kind} programs matching the server's major version (Debian/Ubuntu: {package}-<major>, e.g. {package}-15)."
    )


@functools.lru_cache(maxsize=8)
def _pg_config_bindir(pg_config: str | None) -> str | None:
    if pg_config is None:
        return None
    try:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, env=child_environment(), timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    folder = result.stdout.strip()
    return folder if result.returncode == 0 and folder else None


def _server_bin_dirs(pattern: str) -> list[str]:
    """Debian's /usr/lib/postgresql/<major>/bin folders, newest major first."""

    def major(folder: str) -> tuple[int, ...]:
        version = Path(folder).parent.name
        return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)

    return sorted(glob.glob(pattern), key=major, reverse=True)


def child_environment(
    settings_dict: Mapping[str, Any] | None = None,
    *,
    password: str | None = None,
    application_name: str = "",
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a PostgreSQL program: system basics plus the PG* variables for `settings_dict`
    (a Django DATABASES entry: PASSWORD -> PGPASSWORD, OPTIONS sslmode -> PGSSLMODE...). `password`
    overrides the entry's; `base` (default os.environ) is where the basics are taken from."""
    source = os.environ if base is None else base
    env = {
        key: value
        for key, value in source.items()
        if key in INHERITED or key.startswith(INHERITED_PREFIXES) or key in INHERITED_LIBPQ
    }
    options = dict((settings_dict or {}).get("OPTIONS") or {})
    for option, variable in OPTION_VARIABLES.items():
        if options.get(option) not in (None, ""):
            env[variable] = str(options[option])
    secret = password if password is not None else (settings_dict or {}).get("PASSWORD")
    if secret:
        env["PGPASSWORD"] = str(secret)  # never argv: visible in ps
    env.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT_SECONDS))
    if application_name:
        env.setdefault("PGAPPNAME", application_name)
    return env


def connection_arguments(settings_dict: Mapping[str, Any]) -> list[str]:
    """--host/--port/--username for a Django DATABASES entry (never the password)."""
    args = []
    if settings_dict.get("HOST"):
        args += ["--host", str(settings_dict["HOST"])]
    if settings_dict.get("PORT"):
        args += ["--port", str(settings_dict["PORT"])]
    if settings_dict.get("USER"):
        args += ["--username", str(settings_dict["USER"])]
    return args


# -- starting programs ------------------------------------------------------------------------------
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


def tool_run(
    args: list[str],
    *,
    env: Mapping[str, str],
    error: type[Exception],
    stdin: IO | int | None = None,
    stdout: IO | int | None = subprocess.DEVNULL,
    with_workers: bool = False,
) -> None:
    """Runs a PostgreSQL program to completion; a failure raises `error` with one readable line."""
    with tempfile.TemporaryFile() as stderr:
        try:
            result = child_run(
                args, stdin=stdin, stdout=stdout, stderr=stderr, env=dict(env), check=False, with_workers=with_workers
            )
        except OSError as exc:
            raise error(f"cannot run {Path(args[0]).name}: {exc.strerror or exc}") from exc
        if result.returncode != 0:
            raise error(tool_failure(args[0], result.returncode, stderr_text(stderr)))


def tool_output(args: list[str], *, env: Mapping[str, str], error: type[Exception]) -> str:
    """Runs a PostgreSQL program and returns what it printed; a failure raises `error` in one line."""
    try:
        result = child_run(args, capture_output=True, text=True, env=dict(env), check=False)
    except OSError as exc:
        raise error(f"cannot run {Path(args[0]).name}: {exc.strerror or exc}") from exc
    if result.returncode != 0:
        raise error(tool_failure(args[0], result.returncode, result.stderr))
    return result.stdout


def tool_failure(program: str, returncode: int, stderr: str) -> str:
    """`pg_dump failed (exit 1): error: …; detail: …` — the program's error output on one line."""
    name = Path(program).name
    lines = []
    for line in stderr.splitlines():
        text = " ".join(line.split())
        if text.startswith(f"{name}: "):
            text = text[len(name) + 2 :]
        if text:
            lines.append(text)
    detail = "; ".join(lines) or "(no error output)"
    if len(detail) > FAILURE_LIMIT:
        detail = "…" + detail[-FAILURE_LIMIT:]
    how = f"killed by signal {-returncode}" if returncode < 0 else f"exit {returncode}"
    return f"{name} failed ({how}): {detail}"


def stderr_text(stderr_file: IO[bytes]) -> str:
    stderr_file.seek(0)
    return stderr_file.read().decode("utf-8", "replace")


def tool_version_start(path: str | None) -> subprocess.Popen | None:
    """Starts `<program> --version` (read it with tool_version_read, e.g. after a dump ran meanwhile)."""
    if path is None:
        return None
    return subprocess.Popen(
        [path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_environment()
    )


def tool_version_read(process: subprocess.Popen | None) -> str:
    return process.communicate()[0].strip() if process is not None else ""
