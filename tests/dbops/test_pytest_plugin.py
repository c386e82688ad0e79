"""dbops.pytest_plugin in a pytest run of its own (a child process on a throw-away database of the real
server): with `dbops_n_plus_one_guard = true` a database test whose code under test repeats a statement per
object fails with NPlusOneDetected, the same test passes with the repeat allowed by marker or with the
guard off, and a batched version of the same query passes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest

from tests.paths import ROOT

pytestmark = pytest.mark.slow

INNER_TESTS = """
import pytest

from multipult.core.models import User
from multipult.core.services.seeding import seed_create
from multipult.graphql.schema import execute_query

USERS_WITH_FILES = "{ users(limit: 8) { username files { name } } }"


@pytest.fixture
def staff():
    seed_create(scale=0.5, seed=2)
    return User.objects.create_user("guard-staff", is_staff=True, is_superuser=True)


@pytest.mark.django_db
def test_naive_users_with_files(staff):
    assert execute_query(USERS_WITH_FILES, batch=False, user=staff).errors is None  # one files query per user


@pytest.mark.django_db
@pytest.mark.n_plus_one_allow("multipult/graphql/dataloaders.py:*")
def test_naive_users_with_files_allowed(staff):
    assert execute_query(USERS_WITH_FILES, batch=False, user=staff).errors is None


@pytest.mark.django_db
def test_batched_users_with_files(staff):
    assert execute_query(USERS_WITH_FILES, user=staff).errors is None


@pytest.mark.django_db
@pytest.mark.n_plus_one_allow("multipult/graphql/dataloaders.py:*", "multipult/graphql/dataloaderz.py:*")
def test_naive_allowed_one_pattern_misspelt(staff):
    assert execute_query(USERS_WITH_FILES, batch=False, user=staff).errors is None


@pytest.mark.django_db
@pytest.mark.n_plus_one_allow("multipult/graphql/dataloaders.py:*")
def test_batched_with_a_stale_allow(staff):
    assert execute_query(USERS_WITH_FILES, user=staff).errors is None
"""

INNER_NAMES = (
    "test_naive_users_with_files",
    "test_naive_users_with_files_allowed",
    "test_batched_users_with_files",
    "test_naive_allowed_one_pattern_misspelt",
    "test_batched_with_a_stale_allow",
)


def _run_inner(tmp_path, *options: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nDJANGO_SETTINGS_MODULE = multipult.settings\ndbops_n_plus_one_guard = true\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    # Its own test databases (created and dropped by the child), never the ones this run uses.
    database = f"plugin_probe_{uuid.uuid4().hex[:8]}"
    env |= {"DB_NAME": database, "OPS_DB_NAME": f"{database}_ops", "PYTHONPATH": str(ROOT)}
    plugin = ("-p", "dbops.pytest_plugin", "-p", "no:cacheprovider")
    return subprocess.run(
        [sys.executable, "-m", "pytest", *plugin, "-q", "-rA", "--create-db", *options, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _outcomes(result: subprocess.CompletedProcess) -> dict[str, str]:
    """test name -> PASSED / FAILED / ERROR, from the child's short summary (-rA)."""
    summary = re.findall(r"^(PASSED|FAILED|ERROR) \S*::(\w+)", result.stdout, re.MULTILINE)
    return {name: outcome for outcome, name in summary}


def test_the_guard_fails_a_test_whose_code_repeats_a_statement_and_only_that_one(tmp_path):
    result = _run_inner(tmp_path)
    assert _outcomes(result) == dict.fromkeys(INNER_NAMES, "PASSED") | {"test_naive_users_with_files": "FAILED"}, (
        result.stdout + result.stderr
    )
    assert result.returncode == 1
    assert re.search(r"NPlusOneDetected: N\+1 queries in \S+test_naive_users_with_files: 8 x at "
                     r"multipult/graphql/dataloaders\.py:", result.stdout), result.stdout  # fmt: skip
    # A pattern that allowed nothing is reported by name, and only that one.
    unused = re.findall(
        r"UnusedNPlusOneAllow: \S+::(\w+): n_plus_one_allow pattern\(s\) (.+) allowed no", result.stdout
    )
    assert sorted(unused) == [
        ("test_batched_with_a_stale_allow", "'multipult/graphql/dataloaders.py:*'"),
        ("test_naive_allowed_one_pattern_misspelt", "'multipult/graphql/dataloaderz.py:*'"),
    ], result.stdout


def test_an_unused_allow_pattern_fails_its_test_when_the_warning_is_an_error(tmp_path):
    # The two tests with an unused pattern, and one whose pattern is used (the child run is slow: seeding)
    chosen = "misspelt or stale_allow or users_with_files_allowed"
    result = _run_inner(tmp_path, "-W", "error::dbops.pytest_plugin.UnusedNPlusOneAllow", "-k", chosen)
    assert _outcomes(result) == {
        "test_naive_allowed_one_pattern_misspelt": "FAILED",
        "test_batched_with_a_stale_allow": "FAILED",
        "test_naive_users_with_files_allowed": "PASSED",
    }, result.stdout + result.stderr


def test_without_the_ini_option_the_same_n_plus_one_passes(tmp_path):
    result = _run_inner(tmp_path, "-o", "dbops_n_plus_one_guard=false")
    assert _outcomes(result) == dict.fromkeys(INNER_NAMES, "PASSED"), result.stdout + result.stderr
    assert result.returncode == 0
    assert "UnusedNPlusOneAllow" not in result.stdout  # no guard, no allow-list to check
