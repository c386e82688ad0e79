"""HTTP views of dbops: the health endpoint for load balancers, and the admin pages of the query
analyzer (the slowest captured statements, each linked to its plan).

For the analyzer, only statements the profiler or pg_stat_statements captured can be explained here (by reference, never
free SQL from the browser), and only with plain EXPLAIN: nothing is executed.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from dbops.exceptions import AnalyzerError
from dbops.instrumentation.analyzer import analysis_render, suggestion_headline
from dbops.instrumentation.plans import plan_rows
from dbops.instrumentation.slow_queries import slow_statement_analyze, slow_statements_top
from dbops.services.ops.health import UNHEALTHY, health_report_cached

SLOW_STATEMENTS_SHOWN = 50


def slow_query_viewer(view):
    """Staff who may view the captured slow queries: statements carry table and column names (and the
    plan page runs EXPLAIN), so being staff alone is not enough."""
    return staff_member_required(permission_required("dbops.view_slowquery", raise_exception=True)(view))


def query_plan_url(*, source: str, reference) -> str:
    """The admin URL of one captured statement's plan (the profiler's SlowQuery admin links here)."""
    return reverse("dbops:query-plan") + "?" + urlencode({"source": source, "ref": reference})


@slow_query_viewer
def slow_statements_view(request):
    report = slow_statements_top(limit=SLOW_STATEMENTS_SHOWN)
    rows = [
        {
            "statement": item.statement,
            "plan_url": query_plan_url(source=item.statement.source, reference=item.statement.reference),
        }
        for item in report.analyses
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Slow statements",
        "rows": rows,
        "more": report.total - len(rows),
        "sources_unavailable": report.sources_unavailable,
    }
    return render(request, "admin/dbops/slow_statements.html", context)


@slow_query_viewer
def query_plan_view(request):
    source, reference = request.GET.get("source", ""), request.GET.get("ref", "")
    try:
        item = slow_statement_analyze(source=source, reference=reference)
    except AnalyzerError as exc:
        raise Http404(str(exc)) from exc
    context = {
        **admin.site.each_context(request),
        "title": "Query plan",
        "statement": item.statement,
        "error": item.error,
        "analysis": item.analysis,
        "plan_lines": analysis_render(item.analysis) if item.analysis else [],
        "plan_rows": plan_rows(item.analysis.plan) if item.analysis else [],
        "suggestions": item.analysis.suggestions if item.analysis else [],
        "candidates": [suggestion_headline(s) for s in item.analysis.suggestions + item.analysis.rejected]
        if item.analysis
        else [],
        "back_url": reverse("dbops:slow-statements"),
    }
    return render(request, "admin/dbops/query_plan.html", context)


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """The health report as JSON: 200 when healthy or degraded, 503 when unhealthy (cannot serve).
    It may be up to HEALTH_CACHE_SECONDS old: `checked_at` and `age_seconds` (and the Age header) say
    how old; Cache-Control still forbids caches between us and the load balancer to keep it."""
    cached = health_report_cached()
    body = {**cached.report.as_dict(), "age_seconds": round(cached.age_seconds, 3)}
    response = JsonResponse(body, status=503 if cached.report.status == UNHEALTHY else 200)
    response["Age"] = str(int(cached.age_seconds))
    return response
