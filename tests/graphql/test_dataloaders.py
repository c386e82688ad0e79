"""The loaders' rows (dataloaders.LoadedRow) on the real database: a column the loader did not select
is an error that names it, never a silent null; everything else reads as a named tuple does."""

from __future__ import annotations

import copy
import datetime as dt
import pickle

import pytest

from dbops.engines import get_connector
from multipult.core.models import Role, User
from multipult.graphql import selection
from multipult.graphql.dataloaders import LoadedRow, UnselectedColumnError, loaded_rows
from multipult.graphql.execution import DeferredExecutionContext
from multipult.graphql.schema import execute_query

pytestmark = pytest.mark.django_db

# Sees everything (a superuser holds every permission); unsaved, as in test_schema.
STAFF = User(username="staff-viewer", is_staff=True, is_superuser=True, is_active=True)
LAST_LOGIN = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def editor(db) -> User:
    role = Role.objects.create(name="editor", description="edits concepts")
    user = User.objects.create_user("ada", last_login=LAST_LOGIN)
    user.roles.add(role)
    return user


def role_rows(user: User, columns: tuple[str, ...]) -> list[LoadedRow]:
    roles = Role.objects.only(*columns).order_by("name", "id")
    selected = get_connector(roles.db).rows_per_key(roles, key_field="users", keys=[user.pk], limit=5)
    return loaded_rows(selected, Role, columns)


@pytest.mark.parametrize("fast_paths", [True, False], ids=["fast-path", "graphql-core-path"])
def test_a_field_whose_column_the_loader_did_not_select_is_an_error_not_null(editor, monkeypatch, fast_paths):
    # Given a selection that forgets the column User.lastLogin reads (as a resolver reading an extra column would)
    monkeypatch.setattr(DeferredExecutionContext, "fast_paths", fast_paths)
    user_columns = {name: attname for name, attname in selection._columns_of(User).items() if name != "lastLogin"}
    monkeypatch.setitem(selection._column_maps, User, user_columns)

    # When a role's users (loaded rows) are read with the nullable lastLogin
    result = execute_query('{ roles(name: "editor") { users { username lastLogin } } }', user=STAFF)

    # Then lastLogin fails with a message naming the type and the column, instead of a silent null
    assert result.data == {"roles": [{"users": [{"username": "ada", "lastLogin": None}]}]}
    assert result.errors, "lastLogin came back as a silent null"
    [error] = result.errors
    assert error.path == ["roles", 0, "users", 0, "lastLogin"]
    assert error.message.startswith(
        "User.last_login: the loader did not select the column last_login (its User row holds "
    )
    assert "last_login" not in error.message.split("holds ")[1]


def test_the_same_query_with_the_column_selected_reads_it(editor):
    result = execute_query('{ roles(name: "editor") { description users { username lastLogin } } }', user=STAFF)
    assert result.errors is None
    assert result.data == {
        "roles": [
            {"description": "edits concepts", "users": [{"username": "ada", "lastLogin": LAST_LOGIN.isoformat()}]}
        ]
    }


def test_reading_an_unselected_column_in_python_names_the_model_and_the_column(editor):
    [row] = role_rows(editor, ("id", "name"))

    with pytest.raises(UnselectedColumnError, match=r"^Role\.description: the loader did not select the column"):
        _ = row.description
    # getattr's default does not hide it either (graphene's default resolver reads that way)
    with pytest.raises(UnselectedColumnError):
        getattr(row, "description", None)
    assert (row.pk, row.name) == (Role.objects.get().pk, "editor")


def test_names_that_are_not_columns_stay_ordinary_missing_attributes(editor):
    [row] = role_rows(editor, ("id", "name"))

    assert not hasattr(row, "no_such_attribute")
    assert getattr(row, "get_absolute_url", "absent") == "absent"  # a model method is not a row attribute
    with pytest.raises(AttributeError):
        _ = row.users  # a many-to-many relation is not a column: loaded by its own loader


def test_loaded_rows_copy_and_pickle_to_equal_rows_of_the_same_class(editor):
    [row] = role_rows(editor, ("description", "id", "name"))

    for clone in (copy.copy(row), copy.deepcopy(row), pickle.loads(pickle.dumps(row))):  # noqa: S301 (our own bytes)
        assert clone == row and type(clone) is type(row)
        assert (clone.model, clone.pk, clone.description) == (Role, row.pk, "edits concepts")
