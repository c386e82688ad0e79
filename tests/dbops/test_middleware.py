"""QueryProfilingMiddleware through the full Django stack, and debug-toolbar wiring by DEBUG."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from django.db import connections, router
from django.http import JsonResponse
from django.urls import path

from dbops.instrumentation.profiling import profile_logs_drain
from dbops.models import SlowQuery
from multipult.core.models import User
from multipult.core.services.seeding import seed_create
from tests.paths import ROOT

pytestmark = pytest.mark.django_db

NESTED = "query UsersWithRoles { users(limit: 20) { username roles { name } files { name } } }"


@pytest.fixture
def client_with_profiling(settings, admin_client):
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.QUERY_PROFILING_ENABLED = True
    settings.SLOW_QUERY_THRESHOLD_MS = 10_000
    return admin_client


def summaries(caplog):
    assert profile_logs_drain()  # the middleware writes a request's records on a thread of their own
    return [record.query_summary for record in caplog.records if getattr(record, "query_summary", None)]


def test_profiled_request_has_server_timing_summary_and_loader_stats(client_with_profiling, caplog):
    caplog.set_level(logging.INFO, logger="dbops.profiling")
    seed_create(scale=1, seed=4)
    response = client_with_profiling.post(
        "/graphql", {"query": NESTED, "operationName": "UsersWithRoles"}, content_type="application/json"
    )
    assert response.status_code == 200
    body = response.json()
    assert len(body["data"]["users"]) == 20
    loaders = body["extensions"]["dataloaders"]
    assert loaders["rolesByUserId"] == {"batches": 1, "keys": 20, "cacheHits": 0}
    assert loaders["filesByUploaderId"]["batches"] == 1

    timing = response["Server-Timing"]
    assert timing.startswith("db;dur=") and "total;dur=" in timing
    (summary,) = summaries(caplog)
    assert summary["source"] == "POST /graphql"
    # session + user (auth), the users page, roles, files
    assert summary["queries"] == body["extensions"]["sql"]["queries"] == 5
    assert f'desc="{summary["queries"]} queries"' in timing
    assert summary["n_plus_one"] == []


def test_profiling_off_adds_nothing(settings, admin_client, caplog):
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.QUERY_PROFILING_ENABLED = False
    caplog.set_level(logging.INFO, logger="dbops.profiling")
    response = admin_client.post("/graphql", {"query": NESTED}, content_type="application/json")
    assert response.status_code == 200
    assert "Server-Timing" not in response
    assert "extensions" not in response.json()
    assert summaries(caplog) == []


@pytest.fixture
def forget_slow_queries():
    yield
    # rows recorded during the test transaction were committed through their own connection
    own = connections.create_connection(router.db_for_write(SlowQuery))
    with own.cursor() as cursor:
        cursor.execute(f"DELETE FROM {SlowQuery._meta.db_table}")  # noqa: S608 (a model's table name)
    own.close()


def test_slow_statements_of_a_request_are_persisted_with_the_graphql_operation(
    client_with_profiling, settings, forget_slow_queries
):
    settings.SLOW_QUERY_THRESHOLD_MS = 0  # every statement is "slow", so all of the request's land in SlowQuery
    response = client_with_profiling.post(
        "/graphql", {"query": NESTED, "operationName": "UsersWithRoles"}, content_type="application/json"
    )
    assert response.status_code == 200
    rows = {row.statement: row for row in SlowQuery.objects.all()}
    assert len(rows) == 5
    # The session's user lookup selects every column; the page (the columns the query asks for) never the hash.
    (users_page,) = (
        row
        for statement, row in rows.items()
        if statement.startswith('SELECT "core_user"."id"') and "password" not in statement
    )
    assert users_page.source == "UsersWithRoles"
    assert users_page.call_site.startswith("multipult/graphql/schema.py:query_run:")  # the list is evaluated there


def naive_roles_view(request):
    names = [[role.name for role in user.roles.all()] for user in User.objects.order_by("id")[:6]]
    return JsonResponse({"roles": names})


urlpatterns = [path("naive-roles", naive_roles_view)]


@pytest.mark.urls(__name__)
@pytest.mark.n_plus_one_allow("tests/dbops/test_middleware.py:naive_roles_view*")  # the N+1 it warns about
def test_n_plus_one_in_a_view_is_warned_once_with_its_caller(client_with_profiling, caplog, settings):
    caplog.set_level(logging.INFO, logger="dbops.profiling")
    settings.N_PLUS_ONE_THRESHOLD = 5
    seed_create(scale=0.5, seed=5)
    response = client_with_profiling.get("/naive-roles")
    assert response.status_code == 200
    assert profile_logs_drain()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "dbops.profiling"]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "N+1 queries: 6 x the same statement at tests/dbops/test_middleware.py:naive_roles_view.<locals>.<listcomp>:"
    )
    assert '"core_user_roles"."user_id" = %s' in warnings[0]
    (summary,) = summaries(caplog)
    assert summary["source"] == "GET /naive-roles" and summary["duplicates"] >= 5
    assert len(summary["n_plus_one"]) == 1


@pytest.mark.parametrize(("debug", "expected"), [("true", True), ("false", False)])
def test_debug_toolbar_only_with_debug(debug, expected):
    env = {**os.environ, "DEBUG": debug, "DJANGO_SETTINGS_MODULE": "multipult.settings"}
    code = (
        "import django; django.setup(); from django.conf import settings; from django.urls import reverse;"
        "import sys; installed = 'debug_toolbar' in settings.INSTALLED_APPS;"
        "mw = 'debug_toolbar.middleware.DebugToolbarMiddleware' in settings.MIDDLEWARE;"
        "from django.urls import NoReverseMatch\n"
        "try:\n    reverse('djdt:render_panel'); url = True\nexcept NoReverseMatch:\n    url = False\n"
        "print(installed, mw, url)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(expected)] * 3


def test_an_admin_page_statement_is_placed_in_the_admin_not_the_middleware(
    client_with_profiling, settings, forget_slow_queries
):
    settings.SLOW_QUERY_THRESHOLD_MS = 0  # every statement of the page lands in SlowQuery

    response = client_with_profiling.get("/admin/dbops/backuprecord/")

    assert response.status_code == 200
    sites = set(SlowQuery.objects.values_list("call_site", flat=True))
    assert sites and not any(site.startswith(("dbops/middleware.py", "unknown", "tests/")) for site in sites), sites
    # the changelist's own count and page come from Django's admin, named by file, function and line
    assert any(site.startswith("django/contrib/admin/views/main.py:ChangeList.") for site in sites), sites
