"""Server-side SVG charts for the dashboard: no JavaScript, no CDN, works offline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

if TYPE_CHECKING:  # only a type: the service module is imported when the dashboard is rendered
    from dbops.services.ops.dashboard import BackupPoint, DrillPoint

WIDTH, HEIGHT = 720, 190
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 14, 28
BAR_COLOUR, FAILED_COLOUR = "#417690", "#ba2121"


def history_chart(
    *,
    points: Sequence[BackupPoint | DrillPoint],
    start: datetime,
    end: datetime,
    value: Callable[[BackupPoint | DrillPoint], float | None],
    label: Callable[[float], str],
    title: str,
    chart_id: str,
) -> SafeString:
    """One bar per backup at its start time, height proportional to `value`; failed backups (no
    value) are red ticks on the baseline. `label` formats a value for the axis and tooltips."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = max((end - start).total_seconds(), 1.0)
    values = [value(point) for point in points]
    peak = max((v for v in values if v), default=0.0)
    bar_width = max(2.0, min(10.0, plot_width / max(len(points), 1) * 0.6))
    baseline = TOP + plot_height

    def x_of(moment: datetime) -> float:
        return LEFT + (moment - start).total_seconds() / span * plot_width

    shapes = []
    for point, point_value in zip(points, values, strict=True):
        x = x_of(point.started_at) - bar_width / 2
        tooltip = f"#{point.backup_id} {point.started_at:%Y-%m-%d %H:%M} {point.status}"
        if point_value and peak:
            bar_height = max(1.0, point_value / peak * plot_height)
            shapes.append(
                format_html(
                    '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>',
                    f"{x:.1f}",
                    f"{baseline - bar_height:.1f}",
                    f"{bar_width:.1f}",
                    f"{bar_height:.1f}",
                    BAR_COLOUR,
                    tooltip,
                    label(point_value),
                )
            )
        else:
            shapes.append(
                format_html(
                    '<rect class="no-value" x="{}" y="{}" width="{}" height="6" fill="{}"><title>{}</title></rect>',
                    f"{x:.1f}",
                    f"{baseline - 6:.1f}",
                    f"{bar_width:.1f}",
                    FAILED_COLOUR,
                    tooltip,
                )
            )

    axis_labels = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="{}" font-size="11">{}</text>',
        [
            (LEFT, HEIGHT - 8, "start", f"{start:%Y-%m-%d}"),
            (LEFT + plot_width / 2, HEIGHT - 8, "middle", f"{start + (end - start) / 2:%Y-%m-%d}"),
            (LEFT + plot_width, HEIGHT - 8, "end", f"{end:%Y-%m-%d}"),
            (LEFT - 6, TOP + 10, "end", label(peak) if peak else "—"),
            (LEFT - 6, baseline, "end", label(0)),
        ],
    )
    empty = (
        format_html(
            '<text x="{}" y="{}" text-anchor="middle" font-size="13" fill="#666">No backups in this period</text>',
            LEFT + plot_width / 2,
            TOP + plot_height / 2,
        )
        if not points
        else ""
    )
    return format_html(
        '<svg id="{}" class="history-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" '
        'width="100%" role="img" aria-label="{}"><title>{}</title>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#888"/>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#888"/>'
        "{}{}{}</svg>",
        chart_id,
        WIDTH,
        HEIGHT,
        title,
        title,
        LEFT,
        TOP,
        LEFT,
        baseline,
        LEFT,
        baseline,
        LEFT + plot_width,
        baseline,
        axis_labels,
        mark_safe("".join(shapes)),  # noqa: S308  (each shape was built with format_html)
        empty,
    )
