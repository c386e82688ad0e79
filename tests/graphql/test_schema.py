"""The /graphql schema on the real database: query counts by depth, naive-equal results, Relay
pagination, filters, authentication, depth limit and the absence of sensitive fields."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from multipult.core.models import AuditLog, Role, StoredFile, User
from multipult.core.services.seeding import seed_create
from multipult.graphql.schema import execute_query as execute_as
from multipult.graphql.schema import schema

pytestmark = pytest.mark.django_db

# Sees everything (a superuser holds every permission); unsaved, so the seeded counts stay as they are.
STAFF = User(username="staff-viewer", is_staff=True, is_superuser=True, is_active=True)


def execute_query(query: str, **options):
    return execute_as(query, user=STAFF, **options)


NESTED = """
query Nested($limit: Int!) {
  users(limit: $limit) {
    id username
    roles { name users { username } }
    files { name uploadedBy { username } }
    recentAuditLogs(limit: 3) { id action actor { username } }
  }
}
"""


@pytest.fixture
def seeded(settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.GRAPHQL_MAX_COST = 10_000_000  # the nested query's default list limits cost more than the default
    seed_create(scale=25, seed=7)  # 500 users, their roles, files and audit logs
    assert User.objects.count() == 500


def naive_nested(limit: int) -> list[dict]:
    """What the nested query must return, built with plain per-object ORM access (the N+1 way), with the
    lists' default limits (roles 20, a role's users 100, files 20)."""
    users = []
    for user in User.objects.order_by("-date_joined", "-id")[:limit]:
        roles = [
            {"name": role.name, "users": [{"username": u.username} for u in role.users.order_by("id")[:100]]}
            for role in user.roles.order_by("name", "id")[:20]
        ]
        files = [
            {"name": f.name, "uploadedBy": {"username": f.uploaded_by.username}}
            for f in StoredFile.objects.filter(uploaded_by=user).order_by("-created_at", "-id")[:20]
        ]
        logs = [
            {"id": str(log.id), "action": log.action, "actor": {"username": log.actor.username}}
            for log in AuditLog.objects.filter(actor=user).order_by("-timestamp", "-id")[:3]
        ]
        users.append({"id": str(user.id), "username": user.username, "roles": roles, "files": files,
                      "recentAuditLogs": logs})  # fmt: skip
    return users


def test_nested_query_count_is_the_same_for_10_and_500_users(seeded):
    counts = {}
    for limit in (10, 500):
        with CaptureQueriesContext(connection) as queries:
            result = execute_query(NESTED, variables={"limit": limit})
        assert result.errors is None
        assert len(result.data["users"]) == limit
        counts[limit] = len(queries)
    # users, roles (through the link table), users of those roles, files, their uploaders, audit logs
    # (window query) and their actors: one statement per relation, whatever the number of rows
    assert counts == {10: 6, 500: 6}


@pytest.mark.n_plus_one_allow("dataloader:*", "multipult/graphql/dataloaders.py:*")  # batch=False: the naive baseline
def test_results_equal_the_naive_resolvers(seeded):
    batched = execute_query(NESTED, variables={"limit": 60})
    with CaptureQueriesContext(connection) as naive_queries:
        unbatched = execute_query(NESTED, variables={"limit": 60}, batch=False)

    assert batched.errors is None and unbatched.errors is None
    assert batched.data["users"] == naive_nested(60)
    assert unbatched.data == batched.data
    assert len(naive_queries) > 60  # the baseline really is one query per object


def test_relay_connection_pages_through_all_users_with_constant_queries(seeded):
    query = """
    query Page($after: String) {
      usersConnection(first: 200, after: $after, isActive: true) {
        totalCount
        pageInfo { hasNextPage endCursor }
        edges { node { username roles { name } files { name } } }
      }
    }"""
    seen, after, statements = [], None, set()
    while True:
        with CaptureQueriesContext(connection) as queries:
            result = execute_query(query, variables={"after": after})
        assert result.errors is None
        page = result.data["usersConnection"]
        statements.add(len(queries))
        seen += [edge["node"]["username"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    active = list(
        User.objects.filter(is_active=True).order_by("-date_joined", "-id").values_list("username", flat=True)
    )
    assert seen == active
    assert page["totalCount"] == len(active)
    assert statements == {4}  # count, page, roles, files


def test_connection_with_crossed_cursors_is_empty(seeded):
    first_two = execute_query("{ usersConnection(first: 2) { edges { cursor } } }").data["usersConnection"]["edges"]
    result = execute_query(
        "query($a: String, $b: String) { usersConnection(after: $a, before: $b) { totalCount edges { cursor } } }",
        variables={"a": first_two[1]["cursor"], "b": first_two[0]["cursor"]},
    )
    assert result.errors is None
    assert result.data["usersConnection"] == {"totalCount": 500, "edges": []}


def test_connection_rejects_oversized_pages(seeded):
    result = execute_query("{ usersConnection(first: 5000) { totalCount } }")
    assert result.data is None
    assert "first of Query.usersConnection must be between 0 and 1000, not 5000" in result.errors[0].message


def test_filters_on_indexed_fields(seeded):
    user = User.objects.filter(files__isnull=False, audit_logs__isnull=False).distinct().first()
    stored_file = StoredFile.objects.first()
    result = execute_query(
        """query($u: String!, $actor: ID!, $type: String!, $entity: ID!) {
          users(username: $u) { username }
          inactive: users(isActive: false, limit: 1000) { id }
          auditLogs(actorId: $actor, limit: 1000) { actor { username } }
          files(entityType: $type, entityId: $entity) { id entityType entityId }
          roles(name: "admin") { name }
        }""",
        variables={
            "u": user.username,
            "actor": str(user.id),
            "type": stored_file.entity_type,
            "entity": str(stored_file.entity_id),
        },
    )
    assert result.errors is None
    data = result.data
    assert data["users"] == [{"username": user.username}]
    assert len(data["inactive"]) == User.objects.filter(is_active=False).count()
    assert len(data["auditLogs"]) == AuditLog.objects.filter(actor=user).count()
    assert {log["actor"]["username"] for log in data["auditLogs"]} == {user.username}
    expected_files = StoredFile.objects.filter(entity_type=stored_file.entity_type, entity_id=stored_file.entity_id)
    assert {int(f["id"]) for f in data["files"]} == set(expected_files.values_list("id", flat=True))
    assert data["roles"] == [{"name": "admin"}]


def test_concepts_dictionaries_and_audit_logs_resolve_through_loaders(seeded):
    query = """{
      concepts(limit: 200) { code createdBy { username } }
      dictionaries(limit: 200) { name createdBy { username } entries { key value } }
      auditLogs(limit: 300) { action actor { username } }
      files(limit: 300) { name uploadedBy { username } }
    }"""
    with CaptureQueriesContext(connection) as queries:
        result = execute_query(query)
    assert result.errors is None
    # 4 root lists, one user batch for all four createdBy/actor/uploadedBy, one entries batch
    assert len(queries) == 6
    dictionary = result.data["dictionaries"][0]
    expected = User.objects.get(dictionaries__name=dictionary["name"]).username if dictionary["createdBy"] else None
    assert (dictionary["createdBy"] or {}).get("username") == expected


def test_no_sensitive_fields_in_the_schema():
    user_fields = set(schema.graphql_schema.get_type("User").fields)
    assert "password" not in user_fields
    assert not {name for name in user_fields if "token" in name.lower() or "secret" in name.lower()}
    result = execute_query("{ users { password } }")
    assert "Cannot query field 'password'" in result.errors[0].message


def test_depth_limit(settings):
    settings.GRAPHQL_MAX_DEPTH = 4
    settings.GRAPHQL_MAX_COST = 10_000_000
    deep = "{ users { roles { users { roles { users { username } } } } } }"
    result = execute_query(deep)
    assert result.data is None
    assert "exceeds maximum operation depth of 4" in result.errors[0].message
    assert execute_query("{ users { roles { users { username } } } }").errors is None


# -- over HTTP ------------------------------------------------------------------------------------
def post(client: Client, query: str, **variables):
    return client.post("/graphql", {"query": query, "variables": variables}, content_type="application/json")


def test_endpoint_requires_an_authenticated_user(settings, django_user_model):
    settings.ALLOWED_HOSTS = ["testserver"]
    client = Client()
    response = post(client, "{ roles { name } }")
    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Authentication required."}]}

    client.force_login(django_user_model.objects.create_user("reader", password="x-long-password-1"))
    response = post(client, "{ roles { name } }")
    assert response.status_code == 200
    assert response.json() == {"data": {"roles": []}}


def test_setting_opens_the_endpoint(settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.GRAPHQL_ALLOW_ANONYMOUS = True
    response = post(Client(), "{ roles { name } }")
    assert response.status_code == 200


def test_http_depth_limit_and_error_shape(settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.GRAPHQL_ALLOW_ANONYMOUS = True
    settings.GRAPHQL_MAX_DEPTH = 2
    response = post(Client(), "{ roles { users { roles { name } } } }")
    assert response.status_code == 400
    assert "exceeds maximum operation depth of 2" in response.json()["errors"][0]["message"]


def test_an_invalid_argument_fails_only_its_field(seeded, admin_client):
    response = post(admin_client, '{ roles(limit: 2) { name } user(id: "not-a-number") { username } }')
    body = response.json()
    assert response.status_code == 200
    assert len(body["data"]["roles"]) == 2
    assert body["data"]["user"] is None
    assert [error["path"] for error in body["errors"]] == [["user"]]
    assert "expected a number but got 'not-a-number'" in body["errors"][0]["message"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_get_their_own_loaders(settings):
    # Given committed data visible to every thread's own connection
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.GRAPHQL_ALLOW_ANONYMOUS = True
    settings.QUERY_PROFILING_ENABLED = True  # so each response reports its loaders' statistics
    seed_create(scale=2, seed=3)
    usernames = list(User.objects.order_by("id").values_list("username", flat=True)[:4])
    User.objects.filter(username__in=usernames).update(is_active=True, is_staff=True, is_superuser=True)
    expected_roles = {name: sorted(Role.objects.filter(users__username=name).values_list("name", flat=True))
                      for name in usernames}  # fmt: skip
    barrier = threading.Barrier(len(usernames))
    failures: list[str] = []

    def worker(username: str):
        client = Client()
        client.force_login(User.objects.get(username=username))  # staff: lists of users are theirs to see
        barrier.wait()
        try:
            for _ in range(10):
                body = post(
                    client, "query($u: String!) { users(username: $u) { username roles { name } } }", u=username
                ).json()
                users = body["data"]["users"]
                if [u["username"] for u in users] != [username]:
                    failures.append(f"{username}: got {users}")
                if sorted(r["name"] for r in users[0]["roles"]) != expected_roles[username]:
                    failures.append(f"{username}: roles {users[0]['roles']}")
                stats = body["extensions"]["dataloaders"]["rolesByUserId"]
                if stats != {"batches": 1, "keys": 1, "cacheHits": 0}:
                    failures.append(f"{username}: loader stats {stats}")
        except Exception as error:  # a thread's exception would only be a warning
            failures.append(f"{username}: {error!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(name,)) for name in usernames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_graphiql_page_renders_for_a_browser(settings, admin_client):
    settings.ALLOWED_HOSTS = ["testserver"]
    response = admin_client.get("/graphql", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"graphiql" in response.content.lower()
    assert json.loads(post(admin_client, "{ __typename }").content) == {"data": {"__typename": "Query"}}


def test_introspection_passes_the_depth_limit_and_the_cost_limit():
    from graphql import get_introspection_query

    result = execute_query(get_introspection_query(descriptions=True))
    assert result.errors is None
    assert "User" in {type_["name"] for type_ in result.data["__schema"]["types"]}


def test_connection_last_and_before_page_backwards(seeded):
    ordered = list(User.objects.order_by("-date_joined", "-id").values_list("username", flat=True))
    tail = execute_query(
        "{ usersConnection(last: 3) { edges { cursor node { username } } pageInfo { hasPreviousPage } } }"
    )
    page = tail.data["usersConnection"]
    assert [edge["node"]["username"] for edge in page["edges"]] == ordered[-3:]
    assert page["pageInfo"]["hasPreviousPage"] is True
    before = execute_query(
        "query($b: String) { usersConnection(last: 2, before: $b) { edges { node { username } } } }",
        variables={"b": page["edges"][0]["cursor"]},
    )
    assert [edge["node"]["username"] for edge in before.data["usersConnection"]["edges"]] == ordered[-5:-3]
