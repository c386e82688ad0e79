"""Field permissions, checked by walking the schema: every field of every type has a rule, and every
field of every type reachable from the root is queried as a stranger, as the owner, as a holder of the
view permission and as staff, on the real database. A new field without a rule fails here (and at import)."""

from __future__ import annotations

import datetime as dt
import re

import graphene
import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.utils import timezone
from graphql import get_named_type
from graphql.type import GraphQLObjectType

from multipult.core.models import AuditLog, Role, StoredFile, User
from multipult.graphql.access import FIELD_ACCESS, PUBLIC, access_apply, schema_object_types
from multipult.graphql.schema import execute_query, schema

pytestmark = pytest.mark.django_db

# How to reach one object of each type from the root ($id: the owner's id); a type with a guarded
# field and no route here fails the walk.
ROUTES = {
    "Query": ("query($id: ID!) { owner: user(id: $id) { id }", "}"),
    "User": ("query($id: ID!) { user(id: $id) {", "} }"),
    "AuditLog": ("query($id: ID!) { auditLogs(actorId: $id, limit: 1) {", "} }"),
    "StoredFile": ("query($id: ID!) { user(id: $id) { files(limit: 1) {", "} } }"),
    "Role": ("query($id: ID!) { user(id: $id) { roles(limit: 1) {", "} } }"),
}


@pytest.fixture
def people(db):
    role = Role.objects.create(name="editor")
    owner = User.objects.create_user(
        "owner", email="owner@example.com", first_name="Ada", last_name="Owner", phone="+1 555 0100"
    )
    User.objects.filter(pk=owner.pk).update(last_login=timezone.now())
    owner.roles.add(role)
    AuditLog.objects.create(
        actor=owner,
        action="update",
        entity_type="concept",
        entity_id=1,
        timestamp=timezone.now() - dt.timedelta(minutes=1),
        changes={"name": ["old", "new"]},
        ip_address="192.0.2.7",
    )
    StoredFile.objects.create(
        name="cv.pdf", storage_path="uploads/owner/cv.pdf", entity_type="user", entity_id=owner.pk, uploaded_by=owner
    )
    stranger = User.objects.create_user("stranger")
    holder = User.objects.create_user("holder")  # holds every view permission, but is not staff
    holder.user_permissions.add(
        *Permission.objects.filter(codename__startswith="view_", content_type__app_label="core")
    )
    staff = User.objects.create_user("staff", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_user"))
    staff_without = User.objects.create_user("staff-without", is_staff=True)
    return {
        "owner": owner,
        "stranger": stranger,
        "holder": User.objects.get(pk=holder.pk),  # fresh: no permission cache
        "staff": User.objects.get(pk=staff.pk),
        "staff_without": staff_without,
    }


def selection(graphql_type: GraphQLObjectType, name: str) -> str:
    arguments = "(id: $id)" if (graphql_type.name, name) == ("Query", "user") else ""
    is_object = isinstance(get_named_type(graphql_type.fields[name].type), GraphQLObjectType)
    return f"{name}{arguments} {{ __typename }}" if is_object else name


def may_see(who: str, rule) -> bool:
    if rule.public:
        return True
    if rule.staff_only:
        return who == "staff"
    return who in ("owner", "holder", "staff") if rule.permission == "core.view_user" else who in ("owner", "holder")


def test_every_field_of_every_type_has_a_rule():
    for graphql_type in schema_object_types(schema.graphql_schema):
        assert set(graphql_type.fields) == set(FIELD_ACCESS[graphql_type.name]), graphql_type.name


# Names that say "personal" wherever they appear: such a field must never be public.
PERSONAL = re.compile(r"email|phone|firstName|lastName|lastLogin|ipAddress|[pP]ath$|^changes$|password|token")


def test_personal_fields_are_guarded():
    personal = {
        f"{graphql_type.name}.{name}": FIELD_ACCESS[graphql_type.name][name]
        for graphql_type in schema_object_types(schema.graphql_schema)
        for name in graphql_type.fields
        if PERSONAL.search(name)
    }
    assert set(personal) >= {"User.email", "User.phone", "User.firstName", "AuditLog.changes", "StoredFile.storagePath"}
    assert [label for label, rule in personal.items() if rule.public] == []


def test_a_field_without_a_rule_is_refused_when_the_schema_is_built():
    class Query(graphene.ObjectType):
        users = graphene.String()
        secret_field = graphene.String()

    with pytest.raises(ImproperlyConfigured, match=r"Query\.secretField has no access rule"):
        access_apply(graphene.Schema(query=Query).graphql_schema)


@pytest.mark.parametrize("who", ["stranger", "owner", "holder", "staff", "staff_without"])
@pytest.mark.n_plus_one_allow("multipult/graphql/*")  # one query per field of the schema, by design of the walk
def test_walk_every_field_as_each_caller(people, who):
    owner, viewer = people["owner"], people[who]
    checked = 0
    for graphql_type in schema_object_types(schema.graphql_schema):
        rules = FIELD_ACCESS[graphql_type.name]
        if graphql_type.name not in ROUTES:
            assert all(rule is PUBLIC for rule in rules.values()), f"{graphql_type.name} has guarded fields, no route"
            continue
        opening, closing = ROUTES[graphql_type.name]
        for name, rule in rules.items():
            query = f"{opening} {selection(graphql_type, name)} {closing}"
            result = execute_query(query, user=viewer, variables={"id": str(owner.pk)})
            errors = [error for error in result.errors or [] if error.path and error.path[-1] == name]
            if may_see(who, rule):
                assert not result.errors, f"{who} {graphql_type.name}.{name}: {result.errors}"
            else:
                assert errors, f"{who} must not see {graphql_type.name}.{name}: {result.data}"
                assert "Not permitted" in errors[0].message
                assert result.data is not None  # the rest of the response stands
            checked += 1
    assert checked > 30


def test_a_refused_field_is_null_and_the_rest_of_the_object_stands(people):
    result = execute_query(
        "query($id: ID!) { user(id: $id) { username email phone } }",
        user=people["stranger"],
        variables={"id": str(people["owner"].pk)},
    )
    assert result.data == {"user": {"username": "owner", "email": None, "phone": None}}
    assert sorted(error.path for error in result.errors) == [["user", "email"], ["user", "phone"]]
    assert "visible only to the owner and holders of core.view_user" in result.errors[0].message


def test_a_user_sees_their_own_personal_fields(people):
    owner = people["owner"]
    result = execute_query(
        "query($id: ID!) { user(id: $id) { email phone firstName files { storagePath } } "
        "auditLogs(actorId: $id) { changes ipAddress } }",
        user=owner,
        variables={"id": str(owner.pk)},
    )
    assert result.errors is None
    assert result.data["user"] == {
        "email": "owner@example.com",
        "phone": "+1 555 0100",
        "firstName": "Ada",
        "files": [{"storagePath": "uploads/owner/cv.pdf"}],
    }
    assert result.data["auditLogs"] == [{"changes": '{"name": ["old", "new"]}', "ipAddress": "192.0.2.7"}]


def test_lists_of_users_over_http_for_an_ordinary_account(people, settings):
    # Given the adversary of the issue: an ordinary account, logged in
    settings.ALLOWED_HOSTS = ["testserver"]
    client = Client()
    client.force_login(people["stranger"])
    response = client.post(
        "/graphql",
        {"query": "{ users { email } usersConnection { edges { node { email } } } roles { name users { email } } }"},
        content_type="application/json",
    )
    body = response.json()
    # Then no list of users, no email, and the roles it may see are there
    assert response.status_code == 200
    assert body["data"]["users"] is None and body["data"]["usersConnection"] is None
    assert body["data"]["roles"] == [{"name": "editor", "users": None}]
    assert {tuple(error["path"]) for error in body["errors"]} == {
        ("users",),
        ("usersConnection",),
        ("roles", 0, "users"),
    }
    assert "owner@example.com" not in response.content.decode()


def test_loaders_read_only_the_selected_columns(people):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    staff = people["staff"]
    with CaptureQueriesContext(connection) as queries:
        result = execute_query("{ roles { users { username } } auditLogs { actor { username } } }", user=staff)
    assert result.errors is None
    sql = " ".join(query["sql"] for query in queries.captured_queries if "core_user" in query["sql"])
    assert '"core_user"."username"' in sql
    assert '"core_user"."password"' not in sql and '"core_user"."email"' not in sql
    assert len(queries) == 6  # the viewer's permissions (user, groups), roles, their users, logs, actors
