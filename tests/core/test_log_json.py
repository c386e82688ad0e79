"""multipult.logging.JsonFormatter: pythonjsonlogger's output, record for record, on its one-pass path and off it."""

from __future__ import annotations

import datetime
import json
import logging
import sys
import time

import pytest
from django.conf import settings
from pythonjsonlogger.json import JsonFormatter as LibraryJsonFormatter

from multipult.logging import JsonFormatter

OPTIONS = {key: value for key, value in settings.LOGGING["formatters"]["json"].items() if key != "()"}


def record(msg="query %.2f ms at %s", args=(1.5, "app/views.py:list:12"), *, created=None, **extra):
    made = logging.LogRecord("dbops.profiling", logging.WARNING, __file__, 7, msg, args, None)
    for key, value in extra.items():
        setattr(made, key, value)
    if created is not None:  # as LogRecord derives them, so both formatters see one moment
        made.created, made.msecs = created, int(created * 1000) % 1000
    return made


def both(made: logging.LogRecord, **options) -> tuple[str, str]:
    options = {**OPTIONS, **options}
    return JsonFormatter(**options).format(made), LibraryJsonFormatter(**options).format(made)


def test_settings_use_it():
    assert settings.LOGGING["formatters"]["json"]["()"] == "multipult.logging.JsonFormatter"


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"duration_ms": 1.234, "call_site": "app/views.py:list:12", "code_path": ""},
        {"query_summary": {"queries": 50, "n_plus_one": ["50x SELECT ..."], "slowest_sql": "SELECT 'é' \"x\""}},
        {"when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC), "level_hint": None, "ids": (1, 2)},
        {"_private": "not logged", "levelname_extra": "x"},
    ],
)
def test_one_pass_output_is_the_librarys(extra):
    mine, library = both(record(**extra))
    assert mine == library
    assert set(json.loads(mine)) >= {"time", "level", "logger", "message", *(k for k in extra if k[0] != "_")}


def test_renamed_extra_and_other_fields_are_the_librarys():
    made = record(duration_ms=2.0, call_site="x.py:f:1")
    renamed = {"levelname": "severity", "call_site": "site"}
    mine, library = both(made, rename_fields=renamed, fmt="%(message)s %(lineno)d")
    assert mine == library and json.loads(mine)["site"] == "x.py:f:1" and json.loads(mine)["lineno"] == 7


def test_an_exception_keeps_its_traceback():
    try:
        raise ValueError("broken on purpose")
    except ValueError:
        made = logging.LogRecord("dbops.profiling", logging.ERROR, __file__, 7, "failed", (), sys.exc_info())
    mine, library = both(made)
    assert mine == library
    assert "ValueError: broken on purpose" in json.loads(mine)["exc_info"]


def test_a_dict_message_and_a_stack_are_the_librarys():
    mine, library = both(record({"event": "x", "n": 1}, ()))
    assert mine == library and json.loads(mine)["event"] == "x"
    made = record(stack_info="Stack (most recent call last):\n  here")
    mine, library = both(made)
    assert mine == library and "here" in json.loads(mine)["stack_info"]


def test_the_time_changes_with_the_second_and_the_milliseconds():
    formatter = JsonFormatter(**OPTIONS)
    library = LibraryJsonFormatter(**OPTIONS)
    start = float(int(time.time()))
    # the same second twice (the cached part), the next one, one a day back, then the first again
    for created in (start + 0.001, start + 0.999, start + 1.0, start - 86_400.5, start + 0.25):
        made = record(created=created)
        assert formatter.format(made) == library.format(made), created
    assert (
        json.loads(formatter.format(record(created=start + 1.5)))["time"]
        != json.loads(formatter.format(record(created=start + 0.5)))["time"]
    )


def test_a_date_format_or_another_serializer_goes_through_the_library():
    made = record(duration_ms=1.0)
    mine, library = both(made, datefmt="%H:%M")
    assert mine == library
    mine, library = both(made, json_indent=2)
    assert mine == library and "\n" in mine
    mine, library = both(made, json_default=str)
    assert mine == library
