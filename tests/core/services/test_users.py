"""user_create / role_assign and their commands against the real database."""

from __future__ import annotations

from io import StringIO

import pytest

from dbops.exceptions import UserAdminError
from multipult.core.models import AuditLog, Role, User
from multipult.core.services.users import role_assign, user_create
from tests.commands import command_error, run_command
from tests.dbops.commandline import run_manage

GOOD_PASSWORD = "Correct-Horse-Battery-9"


@pytest.mark.django_db
def test_create_user_reads_the_password_from_the_named_env_var(monkeypatch):
    monkeypatch.setenv("NEW_USER_PASSWORD", GOOD_PASSWORD)
    out = run_command(
        "create_user", "--username", "admin", "--email", "a@b.co", "--password-from-env", "NEW_USER_PASSWORD",
        "--superuser",
    )  # fmt: skip

    user = User.objects.get(username="admin")
    assert user.check_password(GOOD_PASSWORD)
    assert user.is_superuser and user.is_staff
    assert GOOD_PASSWORD not in out
    assert "Created superuser" in out
    log = AuditLog.objects.get(entity_type="core.user", entity_id=user.pk)
    assert log.action == AuditLog.Action.CREATE and "password" not in str(log.changes)


@pytest.mark.django_db
def test_create_user_with_no_password_cannot_log_in():
    run_command("create_user", "--username", "robot", "--email", "r@b.co", "--no-password")
    assert not User.objects.get(username="robot").has_usable_password()


@pytest.mark.django_db
def test_prompted_password_must_be_typed_twice_the_same(monkeypatch):
    from multipult.core.management.commands import create_user

    # three tries that each fail (typed differently, too short, the username itself): nothing created
    answers = iter([GOOD_PASSWORD, "something else", "123", "123", "u1-user", "u1-user"])
    monkeypatch.setattr(create_user.getpass, "getpass", lambda prompt: next(answers))
    monkeypatch.setattr(create_user.sys.stdin, "isatty", lambda: True)
    stderr = StringIO()
    command_error("create_user", "--username", "u1", "--email", "u@b.co", match="after 3 attempts", stderr=stderr)
    assert not User.objects.filter(username="u1").exists()
    assert "differ; try again" in stderr.getvalue() and "too short" in stderr.getvalue()

    # a password the validators refuse is asked for again, and the next good one is taken
    answers = iter(["123", "123", GOOD_PASSWORD, GOOD_PASSWORD])
    stderr = StringIO()
    run_command("create_user", "--username", "u1", "--email", "u@b.co", stderr=stderr)
    assert User.objects.get(username="u1").check_password(GOOD_PASSWORD)
    assert "This password is too short" in stderr.getvalue() and "Try another." in stderr.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("username", "email", "password", "message"),
    [
        ("taken", "t@b.co", GOOD_PASSWORD, "already exists"),
        ("TAKEN", "t@b.co", GOOD_PASSWORD, "already exists"),
        ("new", "not-an-email", GOOD_PASSWORD, "not a valid email"),
        ("new", "n@b.co", "123", "password: This password is too short"),
        ("bad name!", "n@b.co", GOOD_PASSWORD, "Enter a valid username"),
        ("", "n@b.co", GOOD_PASSWORD, "username is empty"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(username, email, password, message):
    User.objects.create(username="taken", email="t@b.co")
    users, logs = User.objects.count(), AuditLog.objects.count()
    with pytest.raises(UserAdminError, match=message):
        user_create(username=username, email=email, password=password)
    assert (User.objects.count(), AuditLog.objects.count()) == (users, logs)


@pytest.mark.django_db
def test_every_problem_is_listed_at_once():
    with pytest.raises(UserAdminError) as error:
        user_create(username="bad name!", email="nope", password="1")
    assert "valid username" in str(error.value) and "email" in str(error.value) and "password" in str(error.value)


@pytest.mark.django_db
def test_assign_role_is_idempotent_and_audited():
    user = User.objects.create(username="ann", email="ann@b.co")
    role = Role.objects.create(name="editor")
    first = run_command("assign_role", "--user-id", str(user.pk), "--role", "editor")
    second = run_command("assign_role", "--user-id", str(user.pk), "--role", "editor")

    assert list(user.roles.all()) == [role]
    assert "now has the role editor" in first and "already had the role" in second
    assert AuditLog.objects.filter(entity_type="core.user", entity_id=user.pk, action="update").count() == 1


@pytest.mark.django_db
def test_assign_role_by_username():
    user = User.objects.create(username="bea", email="bea@b.co")
    Role.objects.create(name="editor")

    output = run_command("assign_role", "--username", "bea", "--role", "editor")

    assert f"User #{user.pk} bea now has the role editor." in output
    assert list(user.roles.values_list("name", flat=True)) == ["editor"]
    command_error("assign_role", "--username", "nobody", "--role", "editor", match="no user named 'nobody'")
    assert list(user.roles.values_list("name", flat=True)) == ["editor"]


@pytest.mark.django_db
def test_unknown_user_and_role_are_both_named():
    Role.objects.create(name="viewer")
    with pytest.raises(UserAdminError) as error:
        role_assign(user_id=987654, role_name="wizard")
    assert "no user with id 987654" in str(error.value)
    assert "no role named 'wizard' (known roles: viewer)" in str(error.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["assign_role", "--user-id", "987654321", "--role", "editor"], "no user with id 987654321"),
        (["assign_role", "--user-id", "1", "--role", "no-such-role"], "no role named 'no-such-role'"),
        (["assign_role", "--user-id", "x", "--role", "editor"], "invalid int value"),
        (["assign_role", "--user-id", "1", "--username", "a", "--role", "editor"], "not allowed with argument"),
        (["assign_role", "--role", "editor"], "one of the arguments --user-id --username is required"),
        (["create_user", "--username", "a", "--email", "a@b.co"], "No password given"),
        (["create_user", "--username", "a", "--email", "a@b.co", "--password-from-env", "UNSET_VAR_X"], "not set"),
    ],
)
def test_commands_exit_non_zero_with_one_readable_message(args, message, test_db_env):
    result = run_manage(*args, env={**test_db_env, "UNSET_VAR_X": None}, stdin="")
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_password_on_the_command_line_is_refused_and_not_echoed(test_db_env):
    result = run_manage(
        "create_user", "--username", "a", "--email", "a@b.co", "--password", "Hunter2-Secret", env=test_db_env
    )
    assert result.returncode == 2
    assert "never accepted on the command line" in result.stderr
    assert "Hunter2-Secret" not in result.stderr + result.stdout
