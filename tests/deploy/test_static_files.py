"""The admin is styled with DEBUG unset, served as deployed: WhiteNoise serves what collectstatic wrote,
under hashed names with far-future caching, from gunicorn and from runserver alike."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("server_kind", ["gunicorn", "runserver"])
def test_the_admin_stylesheet_is_served_with_debug_unset(start_web_server, server_kind):
    server = start_web_server(server_kind)

    status, _headers, body = server.get("/admin/login/")
    assert status == 200
    stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', body.decode())
    base_css = next(href for href in stylesheets if "/admin/css/base." in href)
    # a hashed name from collectstatic's manifest, not the plain one
    assert re.fullmatch(r"/static/admin/css/base\.[0-9a-f]{12}\.css", base_css), base_css

    status, headers, css = server.get(base_css)
    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    assert b"--body-bg" in css  # Django's own stylesheet, not an error page
    assert "max-age=315360000" in headers["Cache-Control"]  # hashed, so cached "forever"


def test_an_unknown_static_file_is_a_404_not_a_page(gunicorn_server):
    status, _headers, _body = gunicorn_server.get("/static/admin/css/no-such-file.css")

    assert status == 404
