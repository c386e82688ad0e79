"""The progress bars of dbops commands (tqdm on the command's stdout): only on a terminal, percent and
ETA where the total is known, and log records written above the bar, never into it."""

from __future__ import annotations

import contextlib
import logging
import re
import sys

import pytest
from django.core.management.base import OutputWrapper

from dbops.management.output import TtyByteProgress, TtyProgress
from tests.commands import TerminalOutput


@pytest.fixture
def terminal(monkeypatch):
    """One fake terminal as stdout and stderr, with a console log handler on it (as LOG_FORMAT=text has).
    Set in the test's own call (pytest's output capture sets sys.stdout/stderr again after fixtures)."""
    screen = TerminalOutput()
    handler = logging.StreamHandler(screen)
    handler.setFormatter(logging.Formatter("%(message)s"))

    @contextlib.contextmanager
    def on_screen():
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stdout", screen)
            patch.setattr(sys, "stderr", screen)
            logging.root.addHandler(handler)
            try:
                yield screen
            finally:
                logging.root.removeHandler(handler)

    return on_screen


def screen_lines(text: str) -> list[str]:
    """What each line shows once the terminal has applied its carriage returns."""
    return [line.split("\r")[-1].rstrip() for line in text.split("\n")]


def test_a_log_line_during_progress_gets_a_line_of_its_own(terminal):
    with terminal() as screen, TtyProgress(OutputWrapper(screen)) as progress:
        progress("import roles", 1, 10)
        logging.getLogger("dbops.test").warning("a warning while the bar runs")
        progress("import roles", 5, 10)
    assert "a warning while the bar runs" in screen_lines(screen.getvalue())
    # the bar itself carries percent, counts and an ETA
    assert re.search(r"import roles:  50%\|.*\| 5/10 \[\d\d:\d\d<\d\d:\d\d", screen.getvalue())


def test_the_console_handlers_level_and_secret_filter_hold_while_a_bar_is_open(terminal):
    with terminal() as screen:
        console = logging.root.handlers[-1]
        console.setLevel(logging.WARNING)
        console.addFilter(lambda record: "hunter2" not in record.getMessage())
        with TtyProgress(OutputWrapper(screen)) as progress:
            progress("export", 1, 10)
            logging.getLogger("dbops.test").warning("password hunter2 in a driver message")
            logging.getLogger("dbops.test").info("an info line the console does not show")
            logging.getLogger("dbops.test").warning("a warning it shows")
            progress("export", 10, 10)
    shown = screen.getvalue()
    assert "hunter2" not in shown and "an info line" not in shown
    assert "a warning it shows" in screen_lines(shown)
    assert "emit" not in vars(console)  # the handler is itself again once the bar is closed


def test_byte_progress_shows_percent_and_eta_when_the_size_is_known(terminal):
    with (
        terminal() as screen,
        TtyByteProgress(OutputWrapper(screen), label="restore: decoding", total=4 * 1024 * 1024) as progress,
    ):
        progress(1024 * 1024, 3 * 1024 * 1024)
        progress(4 * 1024 * 1024, 12 * 1024 * 1024)
    shown = screen.getvalue()
    assert re.search(r"restore: decoding: 100%\|.*\| 4\.00M/4\.00MB? \[", shown), shown
    assert "12.0 MiB written" in shown


def test_byte_progress_without_a_total_shows_bytes_and_rate(terminal):
    with terminal() as screen, TtyByteProgress(OutputWrapper(screen), label="backup") as progress:
        progress(2048, 512)
    shown = screen.getvalue()
    assert "backup: 2.00kB" in shown and "B/s" in shown and "%" not in shown


def test_nothing_is_drawn_off_a_terminal_or_when_quiet(terminal):
    from io import StringIO

    plain = StringIO()
    with TtyProgress(OutputWrapper(plain)) as progress:
        progress("export", 3, 10)
    with terminal() as screen, TtyProgress(OutputWrapper(screen), quiet=True) as progress:
        progress("export", 3, 10)
    assert plain.getvalue() == "" and screen.getvalue() == ""
