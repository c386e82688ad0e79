"""The admin's slow-statement pages: each captured statement links to its plan (real pg_stat_statements)."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.urls import reverse

from tests.dbops.instrumentation.analyzer_data import (
    READS_PG_STAT_STATEMENTS,
    capture_sha256_lookup,
    large_files_table,  # noqa: F401  (fixture)
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("large_files_table"), READS_PG_STAT_STATEMENTS]


@pytest.fixture
def staff_client(client, django_user_model):
    """Staff who may view the captured slow queries (dbops.view_slowquery)."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(username="ops", password="x-very-long-pass", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="dbops", codename="view_slowquery"))
    client.force_login(user)
    return client


def test_slow_statements_link_to_plans_with_index_advice(staff_client):
    capture_sha256_lookup()

    listing = staff_client.get(reverse("dbops:slow-statements"))

    assert listing.status_code == 200
    html = listing.content.decode()
    rows = re.findall(r'<code>(.*?)</code></td>\s*<td><a class="plan-link" href="([^"]+)"', html, re.S)
    links = [unescape(href) for sql, href in rows if '"core_storedfile"."sha256" = $1' in unescape(sql)]
    assert links, html
    plan = staff_client.get(links[0])
    assert plan.status_code == 200, (links, plan.content.decode()[-3000:])
    page = unescape(plan.content.decode())
    assert "-> Seq Scan on core_storedfile" in page and "<== costliest" in page
    assert 'CREATE INDEX CONCURRENTLY "storedfile_sha256_idx" ON "core_storedfile" ("sha256");' in page


def test_unknown_reference_is_404(staff_client):
    response = staff_client.get(reverse("dbops:query-plan") + "?source=pg_stat_statements&ref=abc")
    assert response.status_code == 404
    response = staff_client.get(reverse("dbops:query-plan") + "?source=elsewhere&ref=1")
    assert response.status_code == 404


def test_pages_need_staff(client):
    response = client.get(reverse("dbops:slow-statements"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_staff_without_the_slow_query_permission_is_refused(client, django_user_model):
    capture_sha256_lookup()
    user = django_user_model.objects.create_user(username="clerk", password="x-very-long-pass", is_staff=True)
    client.force_login(user)

    assert client.get(reverse("dbops:slow-statements")).status_code == 403
    assert client.get(reverse("dbops:query-plan") + "?source=profiler&ref=1").status_code == 403


def test_the_plan_is_a_tree_of_bars_without_script(staff_client):
    capture_sha256_lookup()
    html = staff_client.get(reverse("dbops:slow-statements")).content.decode()
    rows = re.findall(r'<code>(.*?)</code></td>\s*<td><a class="plan-link" href="([^"]+)"', html, re.S)
    [link, *_] = [unescape(href) for sql, href in rows if '"core_storedfile"."sha256" = $1' in unescape(sql)]

    page = staff_client.get(link).content.decode()

    assert "<script" not in page.split('id="content-main"')[1]
    bars = [
        float(width)
        for width in re.findall(
            r'<li class="plan-node[^"]*"[^>]*>\s*<span class="bar-track"[^>]*>'
            r'<span class="bar" style="width: ([\d.]+)%"',
            page,
        )
    ]
    assert bars and sum(bars) == pytest.approx(100, abs=0.5)  # exclusive shares add up to the whole plan
    assert 'id="index-candidates"' in page
