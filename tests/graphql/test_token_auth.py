"""/graphql for API clients: `Authorization: Bearer <token>` authenticates as the token's user without a
session or CSRF token; a wrong or revoked token is refused (401), never passed on to the session; the
secret never reaches the logs."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from dbops.instrumentation.profiling import profile_logs_drain
from multipult.core.models import User
from multipult.core.services.tokens import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db

OWN_EMAIL = "query($id: ID!) { user(id: $id) { username email } }"


@pytest.fixture
def api_client_user(settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    return User.objects.create_user("api-client", email="client@example.com")


def post(client: Client, query: str, *, token: str | None = None, **variables):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return client.post("/graphql", {"query": query, "variables": variables}, content_type="application/json", **headers)


def test_a_token_authenticates_as_its_user_without_csrf(api_client_user):
    secret = api_token_create(user_id=api_client_user.pk, name="reporting").secret
    client = Client(enforce_csrf_checks=True)
    response = post(client, OWN_EMAIL, token=secret, id=str(api_client_user.pk))
    assert response.status_code == 200
    assert response.json() == {"data": {"user": {"username": "api-client", "email": "client@example.com"}}}


@pytest.mark.parametrize("token", ["mpt_wrong-token-of-the-right-shape-000000000000", "", "garbage"])
def test_a_wrong_token_is_refused(api_client_user, token):
    response = post(Client(), OWN_EMAIL, token=token, id=str(api_client_user.pk))
    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Invalid or revoked API token."}]}


def test_a_revoked_token_is_refused_even_with_a_session(api_client_user):
    issued = api_token_create(user_id=api_client_user.pk, name="reporting")
    api_token_revoke(token_id=issued.token.pk)
    client = Client()
    client.force_login(api_client_user)  # a valid session does not rescue a revoked token
    response = post(client, OWN_EMAIL, token=issued.secret, id=str(api_client_user.pk))
    assert response.status_code == 401
    assert "client@example.com" not in response.content.decode()


def test_a_session_request_still_needs_its_csrf_token(api_client_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(api_client_user)
    assert post(client, "{ __typename }").status_code == 403


def test_the_secret_never_reaches_the_logs(api_client_user, settings, caplog):
    settings.QUERY_PROFILING_ENABLED = True
    settings.LOG_ALL_QUERIES = True  # every statement logged, the token lookup among them
    secret = api_token_create(user_id=api_client_user.pk, name="reporting").secret
    with caplog.at_level(logging.DEBUG):
        assert post(Client(), OWN_EMAIL, token=secret, id=str(api_client_user.pk)).status_code == 200
        post(Client(), OWN_EMAIL, token=secret + "x", id=str(api_client_user.pk))
        assert profile_logs_drain()  # the requests' statements are logged on the profiler's own thread
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "core_apitoken" in logged  # the lookups were logged, as statements with placeholders
    assert secret not in logged and secret[12:] not in logged
