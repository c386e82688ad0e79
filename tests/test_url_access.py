"""Every URL the project serves has an explicit access decision, and each decision is tried: anonymous,
as staff holding no permission, and (for a permission) as staff holding exactly that permission. A new
URL without a decision here fails the suite; so does a page that lets the wrong user in."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-password-for-access-tests"

# Django's own admin pages of a registered model: the ModelAdmin's has_*_permission decides.
MODEL_ADMIN_PAGE = re.compile(
    r"^admin:(?P<app>\w+?)_(?P<model>[a-z0-9]+)_(?P<page>changelist|add|change|delete|history)$"
)

# Decisions for every other named URL: "public", "login" (any signed-in user, the view decides per
# field), "staff" (the admin site itself, no data), or "perm:<app.codename>" (staff holding it).
DECISIONS = {
    "health": "public",  # load balancers: a status, no secrets (tests/dbops/services/ops/test_health.py)
    "graphql": "login",  # per-field rules (tests/graphql/test_access.py)
    "admin:login": "public",
    "admin:logout": "public",
    "admin:index": "staff",
    "admin:app_list": "staff",
    "admin:jsi18n": "staff",
    "admin:autocomplete": "staff",  # Django checks the target model's view permission itself
    "admin:view_on_site": "staff",
    "admin:password_change": "staff",  # one's own password
    "admin:password_change_done": "staff",
    "dbops:slow-statements": "perm:dbops.view_slowquery",
    "dbops:query-plan": "perm:dbops.view_slowquery",
    "admin:dbops_dashboard": "perm:dbops.view_backuprecord",
    "admin:dbops_backuprecord_backup_now": "perm:dbops.add_backuprecord",
    "admin:dbops_backuprecord_verify": "perm:dbops.change_backuprecord",
    "admin:dbops_backuprecord_restore": "perm:dbops.restore_backup",
    "admin:dbops_backuprecord_table_restore": "perm:dbops.restore_backup",
    "admin:dbops_snapshot_rollback": "perm:dbops.restore_backup",
    "admin:dbops_datatransferrun_import": "perm:dbops.restore_backup",
}
# Unnamed routes: the admin's redirect of <id>/ to <id>/change/, and its catch-all (login or 404).
UNNAMED = [re.compile(r"^admin/[\w]+/[\w]+/<path:object_id>/$"), re.compile(r"^admin/\(\?P<url>\.\*\)\$$")]
POST_ONLY = {"admin:dbops_backuprecord_backup_now", "admin:dbops_backuprecord_verify", "admin:logout"}


def _walk(patterns, prefix="", namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), (namespace + pattern.name) if pattern.name else None


def _served_urls():
    return [(route, name) for route, name in _walk(get_resolver().url_patterns) if not route.startswith("__debug__")]


def _decision(name: str) -> str | None:
    if name in DECISIONS:
        return DECISIONS[name]
    if MODEL_ADMIN_PAGE.match(name):
        return "model"
    return None


def _url(name: str) -> str:
    route_kwargs = {"admin:app_list": {"app_label": "dbops"}}
    if name in route_kwargs:
        return reverse(name, kwargs=route_kwargs[name])
    if name == "admin:view_on_site":
        return reverse(name, args=[1, 1])
    try:
        return reverse(name)
    except NoReverseMatch:  # a page of one object: a missing one (the permission is checked first)
        return reverse(name, args=[987654])


def _request(client: Client, name: str):
    url = _url(name)
    return client.post(url) if name in POST_ONLY else client.get(url)


def _staff(django_user_model, username: str, *permissions: str):
    user = django_user_model.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_every_url_has_an_access_decision():
    undecided = [
        route
        for route, name in _served_urls()
        if (name is None and not any(p.match(route) for p in UNNAMED)) or (name is not None and _decision(name) is None)
    ]
    assert not undecided, f"URLs without an access decision in tests/test_url_access.py: {undecided}"
    stale = set(DECISIONS) - {name for _route, name in _served_urls()}
    assert not stale, f"decisions for URLs that no longer exist: {stale}"


def test_anonymous_users_reach_only_the_public_urls():
    client = Client()
    for _route, name in _served_urls():
        if name is None or _decision(name) == "public":
            continue
        response = _request(client, name)
        if name.startswith(("admin:", "dbops:")):
            assert response.status_code == 302 and "/admin/login/" in response["Location"], (name, response)
        else:
            assert response.status_code in (401, 403), (name, response.status_code)


def test_staff_without_permissions_is_refused_every_page_that_needs_one(django_user_model):
    client = _staff(django_user_model, "clerk")
    for _route, name in _served_urls():
        decision = name and _decision(name)
        if decision == "model":
            response = _request(client, name)
            page = MODEL_ADMIN_PAGE.match(name)["page"]
            # history of a missing object redirects before Django looks at permissions; nothing is shown
            allowed = {403} if page in ("changelist", "add", "change", "delete") else {302, 403}
            assert response.status_code in allowed, (name, response.status_code)
        elif decision and decision.startswith("perm:"):
            assert _request(client, name).status_code == 403, name


def test_the_named_permission_is_the_one_that_opens_the_page(django_user_model):
    for index, (name, decision) in enumerate(sorted(DECISIONS.items())):
        if not decision.startswith("perm:"):
            continue
        client = _staff(django_user_model, f"holder{index}", decision.removeprefix("perm:"))
        response = _request(client, name)
        # 200, a redirect (a missing object, a done action) or 404 (nothing by that reference): never 403
        assert response.status_code in (200, 302, 404), (name, decision, response.status_code)
