"""Shared set-up for benchmarks that need Django and a database of their own.

`bench_database(name)` creates a throw-away `test_<DB_NAME>_<name>` database on the configured server
(migrated, empty), yields, and drops it, so a benchmark never touches anyone's data.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(name: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multipult.settings")
    os.environ["DB_NAME"] = f"{os.environ.get('DB_NAME', 'multipult')}_{name}"
    import django

    django.setup()


@contextlib.contextmanager
def bench_database():
    from django.conf import settings
    from django.test.utils import setup_databases, teardown_databases

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    state = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(state, verbosity=0)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def timed(function, repeat: int) -> float:
    """The median wall time of `repeat` calls of `function`, in seconds."""
    import time

    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return median(samples)
