"""N+1 as a failure: with `N_PLUS_ONE_RAISE` on (the test suite), a profile whose statements repeat
`N_PLUS_ONE_THRESHOLD` times raises `NPlusOneDetected` instead of only warning, as django-zeal does;
deliberate repeats are allowed by `N_PLUS_ONE_ALLOW` (fnmatch patterns of call sites, GraphQL field
paths or statements) or, for one test, `@pytest.mark.n_plus_one_allow(...)` (dbops.pytest_plugin).

`NPlusOneGuard` records a block (a test's body) without touching its SQL, logs or the current profile,
so what the block observes of the profiler is exactly what it would without the guard. Given the test's
own code (`ignore_sites`), it counts per call from that code into the code under test (one request
through the test client, one service call, one command): a test that makes ten requests repeats their
session lookups ten times, which is no N+1, while one request that repeats a statement is.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from fnmatch import fnmatchcase
from typing import Any

from django.conf import settings
from django.db import connections

from dbops.exceptions import DbopsError


class NPlusOneDetected(DbopsError):
    """One statement ran N_PLUS_ONE_THRESHOLD times or more, and no N_PLUS_ONE_ALLOW pattern allows it."""


# While a block records them (the pytest plugin, per test): the allow-list patterns that allowed a repeat, so a
# pattern that allows nothing (stale, or misspelt) is reported instead of silently hiding nothing.
_allow_uses: list[set[str]] = []


@contextmanager
def allow_uses_recorded() -> Iterator[set[str]]:
    """The set of allow-list patterns that allow a repeat anywhere (any thread) inside the block."""
    used: set[str] = set()
    _allow_uses.append(used)
    try:
        yield used
    finally:
        _allow_uses.remove(used)


def n_plus_one_allowed(group: Any, patterns: Iterable[str]) -> bool:
    """Whether an allow-list pattern matches the group's call site, GraphQL field path or statement."""
    values = [value for value in (group.call_site, group.code_path, group.statement) if value]
    matched = [pattern for pattern in patterns if any(fnmatchcase(value, pattern) for value in values)]
    for used in _allow_uses:
        used.update(matched)
    return bool(matched)


def n_plus_one_check(groups: Iterable[Any], *, source: str, allow: Iterable[str] | None = None) -> None:
    """Raises NPlusOneDetected for the repeated groups the allow-list (default: N_PLUS_ONE_ALLOW) leaves."""
    patterns = tuple(settings.N_PLUS_ONE_ALLOW if allow is None else allow)
    offending = [group for group in groups if not n_plus_one_allowed(group, patterns)]
    if offending:
        found = "; ".join(
            f"{group.count} x at {group.call_site}"
            + (f" (GraphQL field {group.code_path})" if group.code_path else "")
            + f": {group.statement[:300]}"
            for group in offending
        )
        raise NPlusOneDetected(
            f"N+1 queries in {source}: {found}. Batch them (select_related, prefetch_related, a DataLoader), "
            "or allow a deliberate repeat with N_PLUS_ONE_ALLOW / @pytest.mark.n_plus_one_allow."
        )


class NPlusOneGuard:
    """Records every statement of a block on every database and raises NPlusOneDetected at its end."""

    def __init__(self, source: str, *, allow: Iterable[str] = (), ignore_sites: Iterable[str] = ()) -> None:
        self.source = source
        self.allow = tuple(allow)
        self.ignore_sites = tuple(ignore_sites)  # call sites that are the test's own code, not code under test
        self.records: list[tuple[str, float, str, Any]] = []
        self.calls: list[str] = []  # per record: the call from the test's code that issued it ("" without one)
        self._call_frame: Any = None  # the frame the test's code last called into (held: its identity is the call)
        self._call_label = ""
        self._call_count = 0
        self._stack: ExitStack | None = None

    def __call__(self, execute, sql, params, many, context):
        self.records.append((sql, 0.0, self._call_site(), self._code_path.get()))
        self.calls.append(self._current_call() if self.ignore_sites else "")
        return execute(sql, params, many, context)

    def _current_call(self) -> str:
        """`tests/x.py:12` for the frame the nearest test-code frame called; a new frame is a new call."""
        callee, frame = None, sys._getframe(2)
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename.startswith(self._test_roots):
                if callee is None:
                    return ""  # the test's own statement: not counted (its call site is test code)
                if callee is not self._call_frame:
                    self._call_frame, self._call_count = callee, self._call_count + 1
                    self._call_label = f"{filename[len(self._root) :]}:{frame.f_lineno} (call {self._call_count})"
                return self._call_label
            callee, frame = frame, frame.f_back
        return ""

    def __enter__(self) -> NPlusOneGuard:
        # Bound now: a block may hide modules from imports (tests of optional parts do).
        from dbops.instrumentation.call_sites import _PROJECT_ROOT, call_site
        from dbops.instrumentation.profiling import code_path, summarize

        self._call_site, self._code_path, self._summarize = call_site, code_path, summarize
        self._root = _PROJECT_ROOT
        self._test_roots = tuple(_PROJECT_ROOT + site for site in self.ignore_sites)
        self._stack = ExitStack()
        for alias in settings.DATABASES:
            self._stack.enter_context(connections[alias].execute_wrapper(self))
        return self

    def __exit__(self, exc_type, *_exc_info) -> None:
        self._stack.close()
        self._call_frame = None
        if exc_type is not None:
            return  # the block's own failure says more
        by_call: dict[str, list] = defaultdict(list)
        for record, call in zip(self.records, self.calls, strict=True):
            if not record[2].startswith(self.ignore_sites):  # the test's own statements
                by_call[call].append(record)
        repeated = []
        for call, records in by_call.items():
            summary = self._summarize(
                records,
                source=f"{self.source}, the call at {call}" if call else self.source,
                slow_threshold_ms=float("inf"),
                n_plus_one_threshold=settings.N_PLUS_ONE_THRESHOLD,
            )
            if summary.n_plus_one:
                repeated.append((summary.source, summary.n_plus_one))
        allow = (*settings.N_PLUS_ONE_ALLOW, *self.allow)
        for source, groups in repeated:
            n_plus_one_check(groups, source=source, allow=allow)
