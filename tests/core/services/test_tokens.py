"""API tokens: the secret is shown once and only its SHA-256 is stored; a wrong, malformed, revoked token
or one of an inactive user authenticates nobody; the api_token command refuses bad input in one line."""

from __future__ import annotations

import hashlib
import re

import pytest

from multipult.core.models import ApiToken, User
from multipult.core.services.tokens import api_token_authenticate, api_token_create, api_token_revoke
from tests.commands import command_error, run_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_user(db):
    return User.objects.create_user("api-client")


def test_only_the_digest_is_stored(client_user):
    issued = api_token_create(user_id=client_user.pk, name="reporting")
    stored = ApiToken.objects.filter(pk=issued.token.pk).values().get()
    assert issued.secret not in repr(stored)
    assert stored["digest"] == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert issued.secret.startswith(stored["prefix"]) and len(issued.secret) > 40
    assert api_token_authenticate(secret=issued.secret) == client_user


def test_wrong_malformed_and_revoked_tokens_authenticate_nobody(client_user):
    issued = api_token_create(user_id=client_user.pk, name="reporting")
    one_char_off = issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")
    for secret in (one_char_off, issued.secret[:12], "", "mpt_", "not-a-token", issued.secret + "x"):
        assert api_token_authenticate(secret=secret) is None, secret
    api_token_revoke(token_id=issued.token.pk)
    assert api_token_authenticate(secret=issued.secret) is None


def test_a_token_of_a_deactivated_user_authenticates_nobody(client_user):
    issued = api_token_create(user_id=client_user.pk, name="reporting")
    User.objects.filter(pk=client_user.pk).update(is_active=False)
    assert api_token_authenticate(secret=issued.secret) is None


def test_last_use_is_recorded_at_most_once_a_minute(client_user, django_assert_num_queries):
    issued = api_token_create(user_id=client_user.pk, name="reporting")
    with django_assert_num_queries(2):  # the lookup, and the first use
        api_token_authenticate(secret=issued.secret)
    with django_assert_num_queries(1):  # the lookup only
        api_token_authenticate(secret=issued.secret)
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at is not None


def test_command_creates_lists_and_revokes(client_user):
    output = run_command("api_token", "create", "--user-id", str(client_user.pk), "--name", "reporting")
    secret = re.search(r"^(mpt_\S+)$", output, re.MULTILINE).group(1)
    token = ApiToken.objects.get()
    assert api_token_authenticate(secret=secret) == client_user
    listing = run_command("api_token", "list")
    assert f"#{token.pk} {token.prefix}… api-client 'reporting' active, used" in listing
    assert secret not in listing
    assert f"API token #{token.pk} (reporting) is revoked." in run_command(
        "api_token", "revoke", "--token-id", str(token.pk)
    )
    assert "revoked" in run_command("api_token", "list")
    assert api_token_authenticate(secret=secret) is None


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("create", "--name", "x"), "create needs --user-id."),
        (("create", "--user-id", "999999", "--name", "x"), "There is no user #999999."),
        (("create", "--user-id", "{user}", "--name", "  "), "A token needs a name saying what it is for."),
        (("revoke",), "revoke needs --token-id."),
        (("revoke", "--token-id", "999999"), "There is no API token #999999."),
    ],
)
def test_command_refuses_bad_input_in_one_line(client_user, arguments, expected):
    arguments = [argument.format(user=client_user.pk) for argument in arguments]
    assert expected in command_error("api_token", *arguments)
    assert ApiToken.objects.count() == 0


def test_a_token_for_an_inactive_user_is_refused(client_user):
    User.objects.filter(pk=client_user.pk).update(is_active=False)
    message = command_error("api_token", "create", "--user-id", str(client_user.pk), "--name", "x")
    assert "is inactive; a token would not work." in message
    assert ApiToken.objects.count() == 0
