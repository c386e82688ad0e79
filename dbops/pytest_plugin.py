"""pytest plugin: N+1 queries as test failures (`-p dbops.pytest_plugin`, or `pytest_plugins` in a conftest).

With the ini option `dbops_n_plus_one_guard = true` (or the marker `n_plus_one_guard` on a test, module
or directory), the body of every database test runs under
`NPlusOneGuard` and with `N_PLUS_ONE_RAISE` on (so profiled requests and tasks inside it raise too);
without it, a test asks for the `n_plus_one_guard` fixture. Statements the test code issues itself
(its setup loops, under the ini `testpaths`) are not the code under test and are not counted. A test
that repeats a statement on purpose says so: `@pytest.mark.n_plus_one_allow("dbops/services/x.py:*")`.
A pattern of a plain test's own marker (not a module's, class's or parametrized test's) that allowed no
repeat in a test that passed warns `UnusedNPlusOneAllow`: a stale or misspelt pattern hides nothing, and
would hide the next N+1 that happens to match it. Make it an error with
`filterwarnings = ["error::dbops.pytest_plugin.UnusedNPlusOneAllow"]` (this project does).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

GUARD_OPTION = "dbops_n_plus_one_guard"
ALLOW_MARKER = "n_plus_one_allow"
GUARD_MARKER = "n_plus_one_guard"


class UnusedNPlusOneAllow(pytest.PytestWarning):
    """An `n_plus_one_allow` pattern of a test allowed no repeat while the test ran."""


def pytest_addoption(parser) -> None:
    parser.addini(GUARD_OPTION, "Fail every database test whose body runs N+1 queries (dbops).", type="bool")


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", f"{ALLOW_MARKER}(*patterns): call sites, GraphQL paths or statements this test repeats on purpose"
    )
    config.addinivalue_line("markers", f"{GUARD_MARKER}: this database test fails on N+1 queries in its body")


def _test_code_sites(config) -> tuple[str, ...]:
    from django.conf import settings

    root = Path(settings.BASE_DIR).resolve()
    sites = []
    for testpath in config.getini("testpaths") or ["."]:
        path = (config.rootpath / testpath).resolve()
        if path.is_relative_to(root) and path != root:
            sites.append(f"{path.relative_to(root)}/")
    return tuple(sites)


def _allowed(item) -> tuple[str, ...]:
    return tuple(pattern for marker in item.iter_markers(ALLOW_MARKER) for pattern in marker.args)


def _guarded_test(item) -> bool:
    wanted = item.config.getini(GUARD_OPTION) or item.get_closest_marker(GUARD_MARKER) is not None
    return bool(wanted) and item.get_closest_marker("django_db") is not None


def _raise_on(request) -> None:
    # Through pytest-django's `settings`: restored in order with every other change a test makes.
    settings = request.getfixturevalue("settings")
    settings.N_PLUS_ONE_RAISE = True
    settings.N_PLUS_ONE_ALLOW = (*settings.N_PLUS_ONE_ALLOW, *_allowed(request.node))


@contextmanager
def _guard(item) -> Iterator[object]:
    """The guard over the block; after a block that passed, a warning for each marker pattern it never used."""
    from dbops.instrumentation.n_plus_one import NPlusOneGuard, allow_uses_recorded

    guard = NPlusOneGuard(item.nodeid, allow=_allowed(item), ignore_sites=_test_code_sites(item.config))
    with allow_uses_recorded() as used, guard:
        yield guard
    # Only a plain test's own marker: one on a module, a class or a parametrized test allows repeats some of
    # its tests (cases) make, not each.
    parametrized = getattr(item, "callspec", None) is not None
    own = [
        pattern
        for marker in (() if parametrized else item.own_markers)
        if marker.name == ALLOW_MARKER
        for pattern in marker.args
    ]
    unused = [pattern for pattern in dict.fromkeys(own) if pattern not in used]
    if unused:
        warnings.warn(
            UnusedNPlusOneAllow(
                f"{item.nodeid}: n_plus_one_allow pattern(s) {', '.join(map(repr, unused))} allowed no repeated "
                "statement; remove them or correct them"
            ),
            stacklevel=1,
        )


@pytest.fixture(autouse=True)
def _dbops_n_plus_one_raise(request) -> None:
    if _guarded_test(request.node):
        _raise_on(request)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item) -> Iterator[None]:
    if not _guarded_test(item):
        return (yield)
    with _guard(item):  # the body only: fixtures' setup is not the code under test
        return (yield)


@pytest.fixture
def n_plus_one_guard(request):
    """The test's body (from this fixture on) fails on N+1 queries, as with the ini option."""
    if _guarded_test(request.node):
        yield None  # the whole body is guarded already
        return
    _raise_on(request)
    with _guard(request.node) as guard:
        yield guard
