"""Runs a management command in this process (`call_command`), for its output or for its refusal.
A child process (exit codes, stderr, TTY, environment) is tests/dbops/commandline.py's job."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command


class TerminalOutput(StringIO):
    """A stdout that says it is a terminal, as an operator's is: where progress lines are shown."""

    def isatty(self) -> bool:
        return True


def on_a_terminal(*args: str, **options: Any) -> str:
    """What `manage.py ARGS` writes on a terminal, progress lines included."""
    return run_command(*args, stdout=TerminalOutput(), **options)


def run_command(*args: str, stdout: Any = None, stderr: Any = None, **options: Any) -> str:
    """`manage.py ARGS` in-process; what it wrote on stdout. Its stderr goes to `stderr` when given (a
    StringIO to read afterwards), else nowhere; `stdout` may be a stream of the test's own (a fake TTY)."""
    out = stdout if stdout is not None else StringIO()
    call_command(*args, stdout=out, stderr=stderr if stderr is not None else StringIO(), **options)
    return out.getvalue()


def command_error(*args: str, match: str | None = None, one_line: bool = True, **options: Any) -> str:
    """The message of the CommandError `manage.py ARGS` must raise (`match`: a regex it must contain);
    one line unless `one_line=False` (a refusal that lists what it found, one item a line)."""
    with pytest.raises(CommandError, match=match) as caught:
        run_command(*args, **options)
    message = str(caught.value)
    if one_line:
        assert "\n" not in message and "Traceback" not in message, message
    return message
