"""Slow statements the query profiler persisted, read-only, each linked to its EXPLAIN page."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from dbops.admin.readonly import ServiceWrittenAdmin
from dbops.models import SlowQuery


# Rows are written by the profiler only.
@admin.register(SlowQuery)
class SlowQueryAdmin(ServiceWrittenAdmin):
    deletable = True  # plain history: staff may prune it
    list_display = ["short_statement", "count", "max_ms", "total_ms", "source", "last_seen", "plan"]
    list_filter = [("last_seen", admin.DateFieldListFilter)]
    search_fields = ["statement", "source", "call_site"]
    ordering = ["-total_ms"]

    @admin.display(description="statement", ordering="statement")
    def short_statement(self, slow_query: SlowQuery) -> str:
        return slow_query.statement if len(slow_query.statement) <= 160 else slow_query.statement[:159] + "…"

    @admin.display(description="plan")
    def plan(self, slow_query: SlowQuery):
        from dbops.views import query_plan_url  # dbops.views pulls in the analyzer and health services

        return format_html('<a href="{}">EXPLAIN</a>', query_plan_url(source="profiler", reference=slow_query.pk))
