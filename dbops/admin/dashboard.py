"""The operations dashboard (linked from the admin index): presents dashboard_summary()."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse

from dbops.admin.charts import age_chart, history_chart


def dashboard_view(model_admin, request):
    # Imported here: this module is loaded at admin autodiscovery, i.e. by every management command.
    from dbops.services.ops.dashboard import dashboard_summary
    from dbops.views import query_plan_url

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
            axis_title="size",
            chart_id="size-chart",
        ),
        "duration_chart": history_chart(
            points=summary.history,
            start=start,
            end=summary.now,
            value=lambda point: point.duration_seconds,
            label=lambda seconds: f"{seconds:.1f} s",
            title=f"Backup duration, last {summary.days} days",
            axis_title="duration",
            chart_id="duration-chart",
        ),
        "age_chart": age_chart(ages=summary.ages),
        # each statement links to its EXPLAIN page (the query analyzer's admin view)
        "slow_query_rows": [
            (slow_query, query_plan_url(source="profiler", reference=slow_query.pk))
            for slow_query in summary.slow_queries
        ],
    }
    return TemplateResponse(request, "admin/dbops/dashboard.html", context)
