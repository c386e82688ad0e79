"""The dashboard page: linked from the admin index, server-side SVG, no external resources."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dbops.models import BackupRecord
from tests.dbops.admin.conftest import make_backup_record

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_admin_index_links_the_dashboard(superuser):
    html = logged_in(superuser).get(reverse("admin:index")).content.decode()

    assert reverse("admin:dbops_dashboard") in html


def test_dashboard_shows_last_backup_charts_and_storage(superuser, backup_dir):
    now = timezone.now()
    for days_ago, size in [(40, 1000), (20, 2000), (3, 4000)]:
        make_backup_record(started_at=now - timedelta(days=days_ago), size_bytes=size, duration_seconds=days_ago / 2)
    make_backup_record(
        started_at=now - timedelta(minutes=5),
        status=BackupRecord.Status.FAILED,
        size_bytes=None,
        duration_seconds=None,
        error="pg_dump: server closed the connection",
    )
    (backup_dir / "one.dump").write_bytes(b"x" * 4096)

    response = logged_in(superuser).get(reverse("admin:dbops_dashboard"))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="big status-failed"' in html and "server closed the connection" in html
    size_chart = re.search(r'<svg id="size-chart".*?</svg>', html, re.S).group(0)
    assert size_chart.count('class="bar"') == 3 and size_chart.count('class="no-value"') == 1
    # bars grow with the backup size: the tallest is the newest (4000 bytes)
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([\d.]+)"', size_chart)]
    assert heights == sorted(heights) and heights[-1] == max(heights)
    assert '<svg id="duration-chart"' in html
    assert "4.0\xa0KB" in html  # local storage used
    # offline: nothing is fetched from another host
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_dashboard_without_backups(superuser):
    html = logged_in(superuser).get(reverse("admin:dbops_dashboard")).content.decode()

    assert "No backup yet" in html and "No backups in this period" in html


def test_dashboard_needs_view_permission(django_user_model):
    staff_without_permissions = django_user_model.objects.create_user("nobody", password="x" * 12, is_staff=True)

    response = logged_in(staff_without_permissions).get(reverse("admin:dbops_dashboard"))

    assert response.status_code == 403


# transactional: the profiler commits SlowQuery rows on its own connection; the flush removes them
@pytest.mark.django_db(transaction=True)
def test_dashboard_lists_the_slowest_statements_the_profiler_recorded(superuser):
    from django.db import connection

    from dbops.instrumentation.profiling import query_profile

    # a real slow statement through the real profiler (pg_sleep), persisted as a SlowQuery
    with query_profile("/reports/heavy", slow_threshold_ms=20), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.05), 'dashboard-probe'")

    html = logged_in(superuser).get(reverse("admin:dbops_dashboard")).content.decode()

    table = re.search(r'<table id="slow-queries">.*?</table>', html, re.S).group(0)
    assert "pg_sleep" in table and "/reports/heavy" in table
    # each statement links to its plan, which the analyzer's page explains
    plan_url = re.search(r'<a href="([^"]+)" class="plan-link">', table).group(1).replace("&amp;", "&")
    plan_page = logged_in(superuser).get(plan_url)
    assert plan_page.status_code == 200 and "pg_sleep" in plan_page.content.decode()
    assert "No slow statements recorded yet." not in html


def test_dashboard_says_when_nothing_slow_was_recorded(superuser, settings):
    from dbops.models import SlowQuery

    settings.QUERY_PROFILING_ENABLED = False
    SlowQuery.objects.all().delete()

    html = logged_in(superuser).get(reverse("admin:dbops_dashboard")).content.decode()

    assert "No slow statements recorded yet. Profiling is off (QUERY_PROFILING_ENABLED=false)." in html


def test_slow_query_admin_lists_rows_with_plan_links(superuser):
    from django.utils import timezone

    from dbops.models import SlowQuery

    now = timezone.now()
    statements = {"a": "SELECT ? FROM core_concept /* a */", "b": "SELECT ? FROM core_role /* b */"}
    for letter, total in (("a", 900.0), ("b", 50.0)):
        SlowQuery.objects.create(
            fingerprint=letter * 40,
            statement=statements[letter],
            sample_sql="SELECT ?",
            count=3,
            total_ms=total,
            max_ms=total / 3,
            first_seen=now,
            last_seen=now,
        )

    html = logged_in(superuser).get(reverse("admin:dbops_slowquery_changelist")).content.decode()

    assert html.index("/* a */") < html.index("/* b */")  # costliest first
    assert html.count(">EXPLAIN</a>") == 2
    # times as a person reads them: whole milliseconds from 100 ms, one decimal below
    assert ">900 ms<" in html and ">300 ms<" in html and ">16.7 ms<" in html and ">50.0 ms<" in html
    assert "16.666" not in html


def _rects(svg: str) -> list[tuple[float, float, float, float]]:
    """(x, y, width, height) of every bar and failed-backup mark of one chart."""
    return [
        tuple(float(number) for number in match)
        for match in re.findall(
            r'<rect class="(?:bar|no-value|bar overdue)" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"',
            svg,
        )
    ]


def test_backups_of_one_day_stand_side_by_side_within_the_axis(superuser):
    from dbops.admin.charts import LEFT, RIGHT, WIDTH

    midday = (timezone.localtime() - timedelta(days=2)).replace(hour=12, minute=0)
    # three backups of the same day (one failed) and the newest just now: the last slot of the axis
    for minutes, status in [(0, "succeeded"), (20, "failed"), (40, "succeeded")]:
        make_backup_record(
            started_at=midday - timedelta(minutes=minutes),
            status=status,
            size_bytes=None if status == "failed" else 5000,
            duration_seconds=None if status == "failed" else 3.0,
        )
    make_backup_record(started_at=timezone.now(), size_bytes=9000, duration_seconds=1.0)

    html = logged_in(superuser).get(reverse("admin:dbops_dashboard")).content.decode()

    size_chart = re.search(r'<svg id="size-chart".*?</svg>', html, re.S).group(0)
    rects = sorted(_rects(size_chart))
    assert len(rects) == 4
    for (x, _, width, _), (next_x, *_) in zip(rects, rects[1:], strict=False):
        assert x + width <= next_x  # no bar drawn over another
    assert all(x >= LEFT and x + width <= WIDTH - RIGHT for x, _, width, _ in rects)
    # a labelled y axis with round ticks, and day ticks on the x axis
    assert re.findall(r'class="tick y-tick"[^>]*>([^<]+)<', size_chart)[:2] == ["0", "2.4\xa0KB"]
    assert len(re.findall(r'class="tick x-tick"', size_chart)) >= 8
    assert re.search(r'class="axis-title"[^>]*>size<', size_chart)


def test_age_chart_marks_databases_past_the_policy_limit(superuser, settings):
    settings.BACKUP_MAX_AGE_HOURS = 26
    now = timezone.now()
    for hours, alias in [(30, "default"), (2, "reports")]:
        moment = now - timedelta(hours=hours)
        make_backup_record(started_at=moment, finished_at=moment, database_alias=alias)

    html = logged_in(superuser).get(reverse("admin:dbops_dashboard")).content.decode()

    age_chart = re.search(r'<svg id="age-chart".*?</svg>', html, re.S).group(0)
    titles = re.findall(r'<rect class="(bar(?: overdue)?)"[^>]*><title>([^<]+)</title>', age_chart)
    by_database = {title.split(":")[0]: css_class for css_class, title in titles}
    assert by_database["default"] == "bar overdue" and by_database["reports"] == "bar"
    assert "limit 26 h" in age_chart and "operations" not in by_database


def test_dashboard_charts_the_pitr_drills_rto_and_rpo(superuser, backup_dir):
    from dbops.models import PitrDrill

    client = logged_in(superuser)
    assert "No PITR drill yet" in client.get(reverse("admin:dbops_dashboard")).content.decode()
    now = timezone.now()
    for days_ago, rto, rpo in [(14, 40.0, 2.5), (7, 55.0, 0.8)]:
        started = now - timedelta(days=days_ago)
        PitrDrill.objects.create(
            started_at=started, target_time=started - timedelta(hours=1), status="succeeded",
            recovery_seconds=rto, rpo_seconds=rpo,
        )  # fmt: skip
    PitrDrill.objects.create(started_at=now - timedelta(days=1), target_time=now, status="failed", error="no WAL")

    html = client.get(reverse("admin:dbops_dashboard")).content.decode()

    assert "PITR drills over the last 60 days (3)" in html
    rto_chart = html[html.index('id="rto-chart"') : html.index('id="rpo-chart"')]
    assert rto_chart.count('class="bar"') == 2 and "55.0 s" in rto_chart and "40.0 s" in rto_chart
    assert "2.5 s" in html[html.index('id="rpo-chart"') :]
