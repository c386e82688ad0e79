"""The operations dashboard (linked from the admin index): presents dashboard_summary()."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse

from dbops.admin.charts import history_chart
from dbops.services.dashboard import dashboard_summary

# SlowQuery columns as the profiler names them; the first attribute present wins.
SLOW_QUERY_COLUMNS = [
    ("statement", ("normalized_sql", "statement", "fingerprint", "sample_sql", "sql")),
    ("calls", ("count", "calls")),
    ("max ms", ("max_ms", "max_duration_ms")),
    ("total ms", ("total_ms", "total_duration_ms")),
    ("where", ("route", "operation", "call_site")),
    ("last seen", ("last_seen", "last_seen_at")),
]


def dashboard_view(model_admin, request):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    summary = dashboard_summary(days=60)
    start = summary.now - timedelta(days=summary.days)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Database operations dashboard",
        "opts": model_admin.model._meta,
        "summary": summary,
        "size_chart": history_chart(
            points=summary.history,
            start=start,
            end=summary.now,
            value=lambda point: point.size_bytes,
            label=lambda size: filesizeformat(int(size)),
            title=f"Backup size, last {summary.days} days",
            chart_id="size-chart",
        ),
        "duration_chart": history_chart(
            points=summary.history,
            start=start,
            end=summary.now,
            value=lambda point: point.duration_seconds,
            label=lambda seconds: f"{seconds:.1f} s",
            title=f"Backup duration, last {summary.days} days",
            chart_id="duration-chart",
        ),
        "slow_query_headers": [header for header, _ in SLOW_QUERY_COLUMNS],
        "slow_query_rows": [_slow_query_cells(slow_query) for slow_query in summary.slow_queries],
    }
    return TemplateResponse(request, "admin/dbops/dashboard.html", context)


def _slow_query_cells(slow_query) -> list:
    cells = []
    for _, attributes in SLOW_QUERY_COLUMNS:
        present = [getattr(slow_query, name) for name in attributes if hasattr(slow_query, name)]
        cells.append(present[0] if present else "")
    return cells
