"""Server-side SVG charts for the dashboard: no JavaScript, no CDN, works offline.

Colours are CSS classes (dbops/static/dbops/admin.css) on Django's admin variables, so the charts
follow the admin's light and dark themes; nothing here names a colour."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

if TYPE_CHECKING:  # only types: the service module is imported when the dashboard is rendered
    from dbops.services.ops.dashboard import BackupAge, BackupPoint, DrillPoint

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 78, 14, 14, 46
Y_TICKS = 4
NO_VALUE_HEIGHT = 6


def nice_step(peak: float, ticks: int = Y_TICKS) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) so that `ticks` steps reach `peak`."""
    if peak <= 0:
        return 1.0
    raw = peak / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _svg(chart_id: str, title: str, height: int, body: SafeString) -> SafeString:
    return format_html(
        '<svg id="{}" class="dbops-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" '
        'width="100%" role="img" aria-label="{}"><title>{}</title>{}</svg>',
        chart_id,
        WIDTH,
        height,
        title,
        title,
        body,
    )


def _join(parts: Sequence[SafeString]) -> SafeString:
    return mark_safe("".join(parts))  # noqa: S308  (each part was built with format_html)


def _day_slots(start: datetime, end: datetime) -> list:
    """The local calendar days from start's to end's, both included: one slot per day on the x axis."""
    first, last = timezone.localtime(start).date(), timezone.localtime(end).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def history_chart(
    *,
    points: Sequence[BackupPoint | DrillPoint],
    start: datetime,
    end: datetime,
    value: Callable[[BackupPoint | DrillPoint], float | None],
    label: Callable[[float], str],
    title: str,
    axis_title: str,
    chart_id: str,
) -> SafeString:
    """One slot per day; the backups of a day stand side by side in its slot (never on top of each other),
    height proportional to `value` on a y axis with round ticks; a failed backup (no value) is a short
    mark on the baseline. `label` formats a value for the axis and the tooltips."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    days = _day_slots(start, end)
    slot_width = plot_width / len(days)
    by_day: dict = defaultdict(list)
    for point in points:
        by_day[timezone.localtime(point.started_at).date()].append(point)
    peak = max((value(point) or 0 for point in points), default=0)
    step = nice_step(peak)
    top_value = step * max(1, math.ceil(peak / step))

    shapes = []
    for index, day in enumerate(days):
        same_day = by_day.get(day, [])
        bar_width = slot_width * 0.8 / max(len(same_day), 1)
        for position, point in enumerate(same_day):
            x = LEFT + index * slot_width + slot_width * 0.1 + position * bar_width
            point_value = value(point)
            tooltip = f"#{point.backup_id} {timezone.localtime(point.started_at):%Y-%m-%d %H:%M} {point.status}"
            if point_value:
                bar_height = max(1.0, point_value / top_value * plot_height)
                css_class, y, tooltip = "bar", baseline - bar_height, f"{tooltip}: {label(point_value)}"
            else:
                css_class, y, bar_height = "no-value", baseline - NO_VALUE_HEIGHT, NO_VALUE_HEIGHT
            shapes.append(
                format_html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
                    css_class,
                    f"{x:.1f}",
                    f"{y:.1f}",
                    f"{max(bar_width - 0.5, 0.5):.1f}",
                    f"{bar_height:.1f}",
                    tooltip,
                )
            )

    y_ticks = [
        format_html(
            '<line class="grid" x1="{}" y1="{}" x2="{}" y2="{}"/>'
            '<text class="tick y-tick" x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>',
            LEFT,
            f"{y:.1f}",
            LEFT + plot_width,
            f"{y:.1f}",
            LEFT - 6,
            f"{y:.1f}",
            label(tick_value) if tick_value else "0",
        )
        for tick_value in [step * n for n in range(int(round(top_value / step)) + 1)]
        for y in [baseline - tick_value / top_value * plot_height]
    ]
    # a tick at the start of every 7th day from the newest backwards, so today always has one
    x_ticks = [
        format_html(
            '<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>'
            '<text class="tick x-tick" x="{}" y="{}" text-anchor="middle">{}</text>',
            f"{x:.1f}",
            baseline,
            f"{x:.1f}",
            baseline + 4,
            f"{x:.1f}",
            baseline + 16,
            f"{day:%b %d}",
        )
        for index, day in enumerate(days)
        if (len(days) - 1 - index) % 7 == 0
        for x in [LEFT + (index + 0.5) * slot_width]
    ]
    empty = (
        format_html(
            '<text class="empty" x="{}" y="{}" text-anchor="middle">No backups in this period</text>',
            LEFT + plot_width / 2,
            TOP + plot_height / 2,
        )
        if not points
        else ""
    )
    body = format_html(
        "{}{}"
        '<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/><line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>'
        '<text class="axis-title" x="{}" y="{}" text-anchor="middle">day (backups of one day side by side)</text>'
        '<text class="axis-title" x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>'
        "{}{}",
        _join(y_ticks),
        _join(x_ticks),
        LEFT,
        TOP,
        LEFT,
        baseline,
        LEFT,
        baseline,
        LEFT + plot_width,
        baseline,
        LEFT + plot_width / 2,
        HEIGHT - 6,
        TOP + plot_height / 2,
        TOP + plot_height / 2,
        axis_title,
        _join(shapes),
        empty,
    )
    return _svg(chart_id, title, HEIGHT, body)


def age_chart(*, ages: Sequence[BackupAge], chart_id: str = "age-chart") -> SafeString:
    """Per database, a horizontal bar of the hours since its last good backup against the policy's limit
    (a dashed line); a bar past the limit, or a database never backed up, is drawn as overdue."""
    row_height, top = 26, 24  # the limit's label sits above the first row
    height = top + row_height * max(len(ages), 1) + 40
    plot_width = WIDTH - LEFT - RIGHT - 60
    limit = max((age.limit_hours for age in ages), default=24.0)
    longest = max([age.hours for age in ages if age.hours is not None] + [limit])
    step = nice_step(longest * 1.1)
    top_value = step * math.ceil(longest * 1.1 / step)
    baseline = top + row_height * max(len(ages), 1)

    def x_of(hours: float) -> float:
        return LEFT + min(hours, top_value) / top_value * plot_width

    rows = []
    for index, age in enumerate(ages):
        y = top + index * row_height + 4
        overdue = age.hours is None or age.hours > age.limit_hours
        hours = top_value if age.hours is None else age.hours
        text = "never backed up" if age.hours is None else f"{age.hours:.1f} h"
        rows.append(
            format_html(
                '<text class="tick" x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>'
                '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}: {} since the last good backup '
                "(limit {} h)</title></rect>"
                '<text class="tick" x="{}" y="{}" dominant-baseline="middle">{}</text>',
                LEFT - 6,
                y + 9,
                age.database,
                "bar overdue" if overdue else "bar",
                LEFT,
                y,
                f"{max(x_of(hours) - LEFT, 1):.1f}",
                18,
                age.database,
                text,
                f"{age.limit_hours:g}",
                f"{x_of(hours) + 4:.1f}",
                y + 9,
                text,
            )
        )
    ticks = [
        format_html(
            '<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>'
            '<text class="tick x-tick" x="{}" y="{}" text-anchor="middle">{}</text>',
            f"{x_of(tick):.1f}",
            baseline,
            f"{x_of(tick):.1f}",
            baseline + 4,
            f"{x_of(tick):.1f}",
            baseline + 16,
            f"{tick:g} h",
        )
        for tick in [step * n for n in range(int(round(top_value / step)) + 1)]
    ]
    body = format_html(
        '{}<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>{}'
        '<line class="limit" x1="{}" y1="{}" x2="{}" y2="{}"/>'
        '<text class="limit-label" x="{}" y="{}" text-anchor="middle">limit {} h</text>'
        '<text class="axis-title" x="{}" y="{}" text-anchor="middle">hours since the last good backup</text>',
        _join(ticks),
        LEFT,
        baseline,
        LEFT + plot_width,
        baseline,
        _join(rows)
        if ages
        else format_html('<text class="empty" x="{}" y="{}">No database to show</text>', LEFT + 10, top + 14),
        f"{x_of(limit):.1f}",
        top - 4,
        f"{x_of(limit):.1f}",
        baseline,
        f"{x_of(limit):.1f}",
        top - 8,
        f"{limit:g}",
        LEFT + plot_width / 2,
        height - 6,
    )
    return _svg(chart_id, "Time since the last good backup, per database", height, body)
