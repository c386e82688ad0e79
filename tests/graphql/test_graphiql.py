"""GraphiQL works offline: its assets are static files of this project (the very files graphene-django pins
by SRI hash), the page names no other host, and headless Chromium with every outside request blocked
renders the editor and runs a query through it."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from django.contrib.staticfiles import finders
from graphene_django.views import GraphQLView as GrapheneView

from tests.dbops.admin.conftest import admin_login, superuser  # noqa: F401 - fixtures

ASSETS = {
    "graphiql/react.production.min.js": GrapheneView.react_sri,
    "graphiql/react-dom.production.min.js": GrapheneView.react_dom_sri,
    "graphiql/graphiql.min.js": GrapheneView.graphiql_sri,
    "graphiql/graphiql.min.css": GrapheneView.graphiql_css_sri,
    "graphiql/graphql-ws.min.js": GrapheneView.subscriptions_transport_ws_sri,
    "graphiql/graphiql-plugin-explorer.umd.js": GrapheneView.graphiql_plugin_explorer_sri,
    "graphiql/graphiql-plugin-explorer.css": GrapheneView.graphiql_plugin_explorer_css_sri,
}


@pytest.mark.parametrize(("asset", "sri"), ASSETS.items())
def test_static_assets_are_the_files_graphene_django_pins(asset, sri):
    path = finders.find(asset)
    assert path, f"{asset} is not a static file"
    with open(path, "rb") as stored:
        digest = base64.b64encode(hashlib.sha256(stored.read()).digest()).decode()
    assert f"sha256-{digest}" == sri


@pytest.mark.django_db
def test_the_page_loads_nothing_from_another_host(admin_client, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    html = admin_client.get("/graphql", HTTP_ACCEPT="text/html").content.decode()
    assert re.findall(r"""(?:src|href)=["'](?:https?:)?//""", html) == []
    assert html.count('src="/static/') >= 5


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_graphiql_renders_and_runs_a_query_with_the_internet_blocked(page, live_server, superuser):  # noqa: F811
    outside: list[str] = []

    def only_the_live_server(route):
        if route.request.url.startswith(live_server.url):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    page.route("**/*", only_the_live_server)
    admin_login(page, live_server, superuser)
    page.goto(f"{live_server.url}/graphql")
    page.wait_for_selector(".graphiql-container")
    page.locator(".graphiql-query-editor .CodeMirror").first.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("{ roles { name } __typename")
    page.locator(".graphiql-execute-button").click()
    page.wait_for_function("document.querySelector('.result-window').innerText.includes('Query')")
    assert '"__typename": "Query"' in page.locator(".result-window").inner_text()
    assert outside == []
