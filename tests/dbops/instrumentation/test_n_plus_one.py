"""N+1 as a test failure: NPlusOneGuard and N_PLUS_ONE_RAISE raise NPlusOneDetected for a statement the
code under test repeats, name it and its caller, honour the allow-list, and leave the test's own setup
alone; the whole suite runs with the guard on (pyproject.toml's dbops_n_plus_one_guard, dbops.pytest_plugin)."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from dbops.instrumentation.n_plus_one import NPlusOneDetected, NPlusOneGuard
from dbops.instrumentation.profiling import query_profile
from multipult.core.models import User
from multipult.core.services.seeding import seed_create
from multipult.graphql.schema import execute_query

pytestmark = pytest.mark.django_db
NAIVE = "{ users(limit: 8) { username files { name } } }"


@pytest.fixture
def staff(settings):
    settings.N_PLUS_ONE_THRESHOLD = 5
    settings.N_PLUS_ONE_ALLOW = ()  # the guards made here see no allow-list but their own
    seed_create(scale=0.5, seed=2)
    return User.objects.create_user("guard-staff", is_staff=True, is_superuser=True)


@pytest.mark.n_plus_one_allow("multipult/graphql/dataloaders.py:*")  # for the suite's guard: the N+1 is the point
def test_guard_raises_on_a_statement_the_code_under_test_repeats(staff):
    with pytest.raises(NPlusOneDetected) as caught, NPlusOneGuard("naive users"):
        execute_query(NAIVE, batch=False, user=staff)
    message = str(caught.value)
    assert message.startswith("N+1 queries in naive users: 8 x at multipult/graphql/dataloaders.py:")
    assert "dataloader:filesByUploaderId" in message and "core_storedfile" in message
    assert "allow a deliberate repeat with N_PLUS_ONE_ALLOW" in message


def test_batched_loaders_pass_the_guard(staff):
    with NPlusOneGuard("batched users") as guard:
        execute_query(NAIVE, user=staff)
    assert 0 < len(guard.records) < 5


@pytest.mark.n_plus_one_allow("multipult/graphql/dataloaders.py:*")
def test_allow_list_patterns_match_call_site_field_path_or_statement(staff):
    for pattern in ("multipult/graphql/dataloaders.py:*", "*dataloader:filesByUploaderId*", "*core_storedfile*"):
        with NPlusOneGuard("allowed", allow=(pattern,)):
            execute_query(NAIVE, batch=False, user=staff)
    with pytest.raises(NPlusOneDetected), NPlusOneGuard("other pattern", allow=("dbops/*",)):
        execute_query(NAIVE, batch=False, user=staff)


def test_the_tests_own_setup_is_not_counted(staff):
    with NPlusOneGuard("setup", ignore_sites=("tests/",)):
        for user_id in range(10):
            User.objects.filter(pk=user_id).exists()
    counted = pytest.raises(NPlusOneDetected, match=r"10 x at tests/dbops/instrumentation/test_n_plus_one.py:")
    with counted, NPlusOneGuard("setup counted"):
        for user_id in range(10):
            User.objects.filter(pk=user_id).exists()


@pytest.mark.n_plus_one_allow("multipult/graphql/dataloaders.py:*")
def test_repeats_across_calls_from_the_test_are_not_n_plus_one_repeats_within_one_call_are(staff):
    # Ten requests each look the viewer up once: ten calls, no N+1 (a per-body count would flag them).
    tests = ("tests/",)
    with NPlusOneGuard("ten calls", ignore_sites=tests) as guard:
        for _ in range(10):
            assert execute_query("{ users(limit: 1) { username } }", user=staff).errors is None
    assert len(guard.records) >= 10 and len(set(guard.calls)) == 10
    within = pytest.raises(
        NPlusOneDetected, match=r"naive, the call at tests/dbops/instrumentation/test_n_plus_one.py:\d+ \(call 1\): 8 x"
    )
    with within, NPlusOneGuard("naive", ignore_sites=tests):
        execute_query(NAIVE, batch=False, user=staff)


@pytest.mark.n_plus_one_allow("multipult/graphql/dataloaders.py:*")
def test_a_profile_raises_with_the_setting_and_only_warns_without(staff, settings, caplog):
    settings.N_PLUS_ONE_RAISE = True
    with pytest.raises(NPlusOneDetected, match=r"N\+1 queries in graphql: 8 x"), query_profile("graphql"):
        execute_query(NAIVE, batch=False, user=staff)
    settings.N_PLUS_ONE_RAISE = False
    with query_profile("graphql"):
        execute_query(NAIVE, batch=False, user=staff)
    assert any("N+1 queries: 8 x the same statement" in record.getMessage() for record in caplog.records)


def test_these_tests_run_with_the_guard_on(request):
    assert request.config.getini("dbops_n_plus_one_guard") is True  # pyproject.toml, for the whole suite
    assert django_settings.N_PLUS_ONE_RAISE is True  # inside a database test's body


def test_system_check_names_allow_patterns_that_can_never_match(settings):
    from dbops.checks import check_n_plus_one_allow

    assert check_n_plus_one_allow(None) == []  # the project's own patterns all name real files
    settings.N_PLUS_ONE_ALLOW = (
        "multipult/graphql/dataloaders.py:*",  # a real file
        "multipult/graphql/dataloaderz.py:*",  # misspelt
        "*/dataloaders.py:*",  # a wildcard path: not checked
        "dataloader:*",  # a GraphQL path
        42,
    )
    problems = check_n_plus_one_allow(None)
    assert [problem.id for problem in problems] == ["dbops.W901", "dbops.E901"]
    assert "dataloaderz.py" in problems[0].msg
