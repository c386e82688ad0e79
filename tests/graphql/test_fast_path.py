"""The execution context's fast path (plain scalar fields read directly, lists of plain objects completed
in one loop) against graphql-core's own path: each query runs with the fast path off and on, for
several viewers, and the two responses must be the same bytes (data, null for denied fields, errors
with their messages, paths and locations) from the same SQL statements."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from multipult.core.models import AuditLog, Role, StoredFile, User
from multipult.core.services.seeding import seed_create
from multipult.graphql.execution import DeferredExecutionContext
from multipult.graphql.schema import execute_query

pytestmark = pytest.mark.django_db

QUERIES = {
    "nested with aliases, fragments and __typename": """
        query($limit: Int!) {
          people: users(limit: $limit) {
            __typename id login: username ...Personal
            roles { __typename ... on Role { id name } description createdAt }
            files(limit: 3) { id name size sha256 storagePath uploadedBy { username email } }
            recentAuditLogs(limit: 2) { id action changes ipAddress timestamp }
          }
        }
        fragment Personal on User { email firstName lastName phone lastLogin isActive isStaff dateJoined }
    """,
    "one user, guarded lists and fields": """
        query($id: ID!) {
          user(id: $id) {
            id email phone
            roles { name users(limit: 5) { id username email } }
            files { name storagePath }
          }
        }
    """,
    "plain root lists with denied fields": """
        {
          auditLogs(limit: 50) { __typename id entityType entityId action changes ipAddress actor { id email } }
          files(limit: 50) { id name contentType storagePath entityType entityId createdAt }
          roles(limit: 50) { id name description }
        }
    """,
    "the same field twice under two aliases, and a null-only selection": """
        { a: roles(limit: 3) { n: name } b: roles(limit: 3) { n: name id } users(limit: 0) { id } }
    """,
}


@pytest.fixture
def viewers(settings):
    settings.GRAPHQL_MAX_COST = 10_000_000
    seed_create(scale=1, seed=11)
    role = Role.objects.create(name="aaa-empty-description", description="")
    owner = User.objects.create_user("fast-owner", email="owner@example.com", phone="+1 555 0101")
    owner.roles.add(role)
    User.objects.create_user("fast-nobody")  # no email, no phone, never logged in: nulls and blanks
    AuditLog.objects.create(
        actor=owner,
        action="update",
        entity_type="concept",
        entity_id=1,
        timestamp=timezone.now() + dt.timedelta(minutes=1),
        changes={"name": ["old", "new"]},
        ip_address="192.0.2.9",
    )
    StoredFile.objects.create(
        name="mine.txt", storage_path="uploads/mine.txt", entity_type="user", entity_id=owner.pk, uploaded_by=owner
    )
    staff = User(username="fast-staff", is_staff=True, is_superuser=True, is_active=True)
    return {"anonymous": None, "staff": staff, "owner": owner, "stranger": User.objects.create_user("fast-stranger")}


@pytest.fixture
def plain_reads(monkeypatch) -> list[bool]:
    """One entry per object the one-loop path tried: True when it completed it, False when it fell back."""
    reads: list[bool] = []
    read_plain = DeferredExecutionContext._plain_object

    def counting(self, plan, source):
        completed = read_plain(self, plan, source)
        reads.append(completed is not None)
        return completed

    monkeypatch.setattr(DeferredExecutionContext, "_plain_object", counting)
    return reads


def run(query: str, *, fast: bool, user, monkeypatch, variables) -> tuple[str, list[str]]:
    monkeypatch.setattr(DeferredExecutionContext, "fast_paths", fast)
    if user is not None and user.pk is not None:
        user = User.objects.get(pk=user.pk)  # fresh: Django caches permissions on the user object
    with CaptureQueriesContext(connection) as statements:
        result = execute_query(query, user=user, variables=variables)
    return json.dumps(result.formatted), [statement["sql"] for statement in statements]


@pytest.mark.parametrize("name", list(QUERIES))
@pytest.mark.parametrize("who", ["anonymous", "staff", "owner", "stranger"])
def test_fast_path_responses_are_byte_identical_to_graphql_cores(viewers, monkeypatch, plain_reads, name, who):
    query, user = QUERIES[name], viewers[who]
    variables = {"limit": 30, "id": str(viewers["owner"].pk)}
    reference, reference_sql = run(query, fast=False, user=user, monkeypatch=monkeypatch, variables=variables)
    assert plain_reads == []  # off means off: graphql-core completed every object
    fast, fast_sql = run(query, fast=True, user=user, monkeypatch=monkeypatch, variables=variables)

    assert fast == reference
    assert fast_sql == reference_sql
    assert json.loads(fast)["data"] is not None or who == "anonymous"


def test_the_fast_path_is_taken_and_denied_fields_keep_their_errors(viewers, monkeypatch, plain_reads):
    # A stranger's audit logs fall back per object (changes, ipAddress denied, with errors); files and roles do not.
    query = QUERIES["plain root lists with denied fields"]
    fast, _ = run(query, fast=True, user=viewers["stranger"], monkeypatch=monkeypatch, variables={})
    response = json.loads(fast)

    assert any(plain_reads), "no list was completed in one loop"
    assert not all(plain_reads), "denied fields must fall back to graphql-core's path"
    logs = response["data"]["auditLogs"]
    assert logs and all(log["changes"] is None and log["ipAddress"] is None for log in logs)
    denied = [error for error in response["errors"] if error["path"][0] == "auditLogs" and len(error["path"]) == 3]
    assert len(denied) == 2 * len(logs)
    assert denied[0] == {
        "message": "Not permitted: AuditLog.changes is visible only to the owner and holders of core.view_auditlog.",
        "locations": denied[0]["locations"],
        "path": ["auditLogs", 0, "changes"],
    }
    # Roles have no guarded field: every one of them was read in the loop, none fell back.
    assert [role["id"] for role in response["data"]["roles"]] == [
        str(pk) for pk in Role.objects.order_by("name").values_list("pk", flat=True)[:50]
    ]


def test_loaded_rows_hold_the_selected_columns_converted_from_either_per_key_form(viewers):
    # The LATERAL form (a raw queryset) and the portable window form (a queryset) give the same rows.
    from dbops.engines import get_connector
    from dbops.engines.per_key import KEY_ATTRIBUTE, rows_per_key_window
    from multipult.graphql.dataloaders import LoadedRow, loaded_rows

    owner = viewers["owner"]
    columns = ("action", "actor_id", "changes", "id", "timestamp")
    logs = AuditLog.objects.only(*columns).order_by("-timestamp", "-id")
    actor_ids = [owner.pk, *User.objects.exclude(pk=owner.pk).values_list("pk", flat=True)[:5]]
    lateral = get_connector(logs.db).rows_per_key(logs, key_field="actor", keys=actor_ids, limit=3)
    window = rows_per_key_window(logs, key_field="actor", keys=actor_ids, limit=3)

    lateral_rows = loaded_rows(lateral, AuditLog, columns)
    window_rows = loaded_rows(window, AuditLog, columns)

    def by_key(rows):  # LATERAL keeps the keys' order, the window sorts by key; each key's rows keep their order
        return sorted(({**row._asdict(), "pk": row.pk} for row in rows), key=lambda row: row[KEY_ATTRIBUTE])

    assert len(lateral_rows) > 3 and by_key(lateral_rows) == by_key(window_rows)
    assert all(isinstance(row, LoadedRow) and row.model is AuditLog for row in lateral_rows)
    owner_log = AuditLog.objects.filter(actor=owner).order_by("-timestamp", "-id").first()
    first = next(row for row in lateral_rows if getattr(row, KEY_ATTRIBUTE) == owner.pk)
    assert (first.pk, first.changes, first.timestamp) == (owner_log.pk, {"name": ["old", "new"]}, owner_log.timestamp)
    assert loaded_rows([], AuditLog, columns) == []
