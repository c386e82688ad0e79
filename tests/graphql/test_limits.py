"""Bad input to /graphql, each refused before execution with one error naming the rule or limit, and no
SQL run for it: over-cost queries, alias bombs, too many root fields, fragment cycles, depth bombs
through fragments, huge limits, introspection as a non-staff user, an over-size response."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from multipult.core.models import Role, User
from multipult.graphql.limits import QueryLimits, query_limits_check
from multipult.graphql.schema import execute_query, schema

pytestmark = pytest.mark.django_db

# The depth-6 query of the issue, under the depth limit: 236 MB and 44 s before the cost limit.
DEPTH_SIX = "{ users(limit: 1000) { roles { users { roles { users { roles { name } } } } } } }"


@pytest.fixture
def staff(db):
    return User.objects.create_user("staff", is_staff=True, is_superuser=True)


@pytest.fixture
def ordinary(db):
    return User.objects.create_user("ordinary")


def refused(query: str, user, **variables) -> str:
    """The one error of a query refused before execution, checked to have run no SQL."""
    with CaptureQueriesContext(connection) as queries:
        result = execute_query(query, user=user, variables=variables or None)
    assert result.data is None, result.data
    assert len(result.errors) == 1, result.errors
    assert [query["sql"] for query in queries.captured_queries if "core_" in query["sql"]] == []
    return result.errors[0].message


def cost(query: str, **variables) -> str | None:
    from graphql import parse

    errors = query_limits_check(
        schema.graphql_schema, parse(query), variables=variables, operation_name=None, limits=QueryLimits(10**9, 99, 9)
    )
    return errors[0].message if errors else None


def test_the_depth_six_query_of_the_issue_is_refused_by_its_cost(staff):
    message = refused(DEPTH_SIX, staff)
    assert "costs more than 100,000 (GRAPHQL_MAX_COST)" in message
    assert "ask for smaller lists" in message


def test_cost_multiplies_nested_list_limits():
    # 1 (users) + 10 x (1 (username) + 1 (roles) + 10 x 1 (name))
    query = "{ users(limit: 10) { username roles(limit: 10) { name } } }"
    limits = QueryLimits(max_cost=121, max_aliases=20, max_root_fields=10)
    from graphql import parse

    assert (
        query_limits_check(schema.graphql_schema, parse(query), variables={}, operation_name=None, limits=limits) == []
    )
    one_less = QueryLimits(max_cost=120, max_aliases=20, max_root_fields=10)
    errors = query_limits_check(schema.graphql_schema, parse(query), variables={}, operation_name=None, limits=one_less)
    assert "costs more than 120 (GRAPHQL_MAX_COST) at Role.name" in errors[0].message


def test_a_smaller_limit_makes_an_over_cost_query_pass(staff, settings):
    settings.GRAPHQL_MAX_COST = 1000
    assert "GRAPHQL_MAX_COST" in refused("{ roles { users { username } } }", staff)  # defaults: 100 x 100
    Role.objects.create(name="editor").users.add(staff)
    result = execute_query("{ roles(limit: 5) { users(limit: 5) { username } } }", user=staff)
    assert result.errors is None and result.data == {"roles": [{"users": [{"username": "staff"}]}]}


def test_alias_bomb_of_root_fields_is_refused(staff):
    bomb = "{ " + " ".join(f"a{i}: users(limit: 1000) {{ id }}" for i in range(100)) + " }"
    assert refused(bomb, staff) == "The query asks for 100 root fields, more than 10 (GRAPHQL_MAX_ROOT_FIELDS)."


def test_alias_bomb_inside_one_object_is_refused(staff):
    bomb = "query($id: ID!) { user(id: $id) { " + " ".join(f"a{i}: username" for i in range(21)) + " } }"
    assert refused(bomb, staff, id=str(staff.pk)) == "The query uses more than 20 aliases (GRAPHQL_MAX_ALIASES)."


def test_fragment_cycle_is_refused(staff):
    query = "fragment A on User { roles { users { ...A } } } { users { ...A } }"
    assert "Cannot spread fragment 'A' within itself" in refused(query, staff)


def test_depth_bomb_through_fragments_is_refused(staff):
    # Each fragment one level deeper than the last: 10 levels, none of them visible in the operation itself.
    fragments = [f"fragment F{i} on User {{ roles {{ users {{ ...F{i + 1} }} }} }}" for i in range(5)]
    fragments.append("fragment F5 on User { username }")
    query = "{ users { ...F0 } } " + " ".join(fragments)
    assert "exceeds maximum operation depth of 8" in refused(query, staff)


def test_fragments_spread_many_times_are_costed_once_per_selection(staff):
    # The same fragment spread under many aliases still pays for every alias: no free fan-out.
    query = "fragment Names on Role { users { username } } { roles { " + " ".join(
        f"a{i}: users {{ roles {{ ...Names }} }}" for i in range(5)
    )
    message = refused(query + " } }", staff)
    assert "GRAPHQL_MAX_COST" in message


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("{ users(limit: 100000000) { id } }", "limit of Query.users must be between 0 and 1000, not 100000000."),
        ("{ users(limit: -1) { id } }", "limit of Query.users must be between 0 and 1000, not -1."),
        ("{ roles { users(limit: 5000) { id } } }", "limit of Role.users must be between 0 and 1000, not 5000."),
        ("{ usersConnection(last: 1001) { totalCount } }", "last of Query.usersConnection must be between 0 and 1000"),
    ],
)
def test_huge_or_negative_limit_is_refused(staff, query, expected):
    assert expected in refused(query, staff)


def test_huge_limit_in_a_variable_is_refused(staff):
    message = refused("query($n: Int!) { users(limit: $n) { id } }", staff, n=2**31 - 1)
    assert message == "limit of Query.users must be between 0 and 1000, not 2147483647."


def test_every_list_has_a_default_limit():
    for query in ("{ users { roles { users { username } } } }", "{ dictionaries { entries { key } } }"):
        assert cost(query) is None
    assert cost("{ users { files { name } recentAuditLogs { id } } }") is None


@pytest.mark.parametrize("who", ["ordinary", "anonymous"])
def test_introspection_is_refused_to_non_staff(who, ordinary):
    user = ordinary if who == "ordinary" else None
    message = refused("{ __schema { types { name } } }", user)
    assert message == "Introspection (__schema) is only for staff users, or with DEBUG on."
    assert "__type" in refused('{ __type(name: "User") { fields { name } } }', user)
    assert execute_query("{ __typename }", user=user).data == {"__typename": "Query"}  # not introspection


def test_introspection_for_staff_and_with_debug(staff, ordinary, settings):
    assert execute_query("{ __schema { queryType { name } } }", user=staff).errors is None
    settings.DEBUG = True
    assert execute_query("{ __schema { queryType { name } } }", user=ordinary).errors is None


def test_introspection_over_http_for_an_ordinary_account(ordinary, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    client = Client()
    client.force_login(ordinary)
    response = client.post("/graphql", {"query": "{ __schema { types { name } } }"}, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": "Introspection (__schema) is only for staff users, or with DEBUG on.",
                "locations": [{"line": 1, "column": 3}],
            }
        ]
    }


def test_graphiql_is_refused_to_an_ordinary_account(ordinary, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    client = Client()
    client.force_login(ordinary)
    response = client.get("/graphql", HTTP_ACCEPT="text/html")
    assert response.status_code == 403
    assert "GraphiQL is only for staff users" in response.json()["errors"][0]["message"]
    # the same account may still send queries as JSON
    assert client.post("/graphql", {"query": "{ __typename }"}, content_type="application/json").status_code == 200


def test_an_over_size_response_is_replaced_by_one_error(staff, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.GRAPHQL_MAX_RESPONSE_BYTES = 1000
    Role.objects.bulk_create([Role(name=f"role-{i:03}", description="x" * 20) for i in range(40)])
    client = Client()
    client.force_login(staff)
    small = client.post("/graphql", {"query": "{ roles(limit: 2) { name } }"}, content_type="application/json")
    assert small.status_code == 200 and len(small.json()["data"]["roles"]) == 2
    response = client.post("/graphql", {"query": "{ roles { name description } }"}, content_type="application/json")
    assert response.status_code == 400
    message = response.json()["errors"][0]["message"]
    assert "more than 1,000 (GRAPHQL_MAX_RESPONSE_BYTES)" in message and "role-000" not in response.content.decode()


def test_an_over_long_document_is_refused_before_it_is_parsed_whole(staff):
    message = refused("{ " + "__typename " * 6000 + "}", staff)
    assert "Document contains more than 5000 tokens" in message
