"""GraphQL tests: every database test here fails on N+1 queries in its body (dbops.pytest_plugin)."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.n_plus_one_guard)
