"""Slow statements the query profiler persisted, read-only, each linked to its EXPLAIN page."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from dbops.admin.readonly import ServiceWrittenAdmin
from dbops.models import SlowQuery


def milliseconds_display(milliseconds: float) -> str:
    """12.3 ms, 1,234 ms, 2.5 s: as precise as a person reads a duration."""
    if milliseconds >= 10_000:
        return f"{milliseconds / 1000:.1f} s"
    return f"{milliseconds:,.0f} ms" if milliseconds >= 100 else f"{milliseconds:.1f} ms"


# Rows are written by the profiler only.
@admin.register(SlowQuery)
class SlowQueryAdmin(ServiceWrittenAdmin):
    deletable = True  # plain history: staff may prune it
    list_display = ["short_statement", "count", "max_time", "total_time", "call_site", "source", "last_seen", "plan"]
    list_filter = [("last_seen", admin.DateFieldListFilter)]
    search_fields = ["statement", "source", "call_site"]
    ordering = ["-total_ms"]

    @admin.display(description="statement", ordering="statement")
    def short_statement(self, slow_query: SlowQuery) -> str:
        return slow_query.statement if len(slow_query.statement) <= 160 else slow_query.statement[:159] + "…"

    @admin.display(description="max", ordering="max_ms")
    def max_time(self, slow_query: SlowQuery) -> str:
        return milliseconds_display(slow_query.max_ms)

    @admin.display(description="total", ordering="total_ms")
    def total_time(self, slow_query: SlowQuery) -> str:
        return milliseconds_display(slow_query.total_ms)

    @admin.display(description="plan")
    def plan(self, slow_query: SlowQuery):
        from dbops.views import query_plan_url  # dbops.views pulls in the analyzer and health services

        return format_html('<a href="{}">EXPLAIN</a>', query_plan_url(source="profiler", reference=slow_query.pk))
