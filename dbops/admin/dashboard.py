"""The operations dashboard (linked from the admin index): presents dashboard_summary()."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse

from dbops.admin.charts import age_chart, history_chart


def size_label(size: float) -> str:
    return filesizeformat(int(size))


def seconds_label(seconds: float) -> str:
    return f"{seconds:.1f} s"


def dashboard_view(model_admin, request):
    # Imported here: this module is loaded at admin autodiscovery, i.e. by every management command.
    from dbops.services.ops.dashboard import dashboard_summary
    from dbops.views import query_plan_url

    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    summary = dashboard_summary(days=60)
    start = summary.now - timedelta(days=summary.days)

    def chart(points, name: str, value, label, title: str, axis_title: str):
        return history_chart(
            points=points,
            start=start,
            end=summary.now,
            value=value,
            label=label,
            title=f"{title}, last {summary.days} days",
            axis_title=axis_title,
            chart_id=f"{name}-chart",
        )

    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Database operations dashboard",
        "opts": model_admin.model._meta,
        "summary": summary,
        "size_chart": chart(summary.history, "size", lambda point: point.size_bytes, size_label, "Backup size", "size"),
        "duration_chart": chart(
            summary.history,
            "duration",
            lambda point: point.duration_seconds,
            seconds_label,
            "Backup duration",
            "duration",
        ),
        "rto_chart": chart(
            summary.drills,
            "rto",
            lambda drill: drill.recovery_seconds,
            seconds_label,
            "PITR drill recovery time (RTO)",
            "recovery time",
        ),
        "rpo_chart": chart(
            summary.drills,
            "rpo",
            lambda drill: drill.rpo_seconds,
            seconds_label,
            "PITR drill gap to the target (RPO)",
            "gap",
        ),
        "age_chart": age_chart(ages=summary.ages),
        # each statement links to its EXPLAIN page (the query analyzer's admin view)
        "slow_query_rows": [
            (slow_query, query_plan_url(source="profiler", reference=slow_query.pk))
            for slow_query in summary.slow_queries
        ],
    }
    return TemplateResponse(request, "admin/dbops/dashboard.html", context)
