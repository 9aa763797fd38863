"""The storage outlook's chart: space used over time, the capacity, and the forecast line, as a
small inline SVG (no script, no library: a page that shows it needs nothing but the HTML).

Pure: samples and a forecast in, markup out. Every text in it is escaped; the rest is numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape

from backups.outlook import Forecast, SpaceSample
from tasks.formatting import size

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 28
#: At most this many points are drawn; longer histories are thinned evenly (the fit uses all).
MAX_POINTS = 400


def chart_svg(
    samples: Sequence[SpaceSample], outlook: Forecast, *, now: datetime, title: str
) -> str:
    """The chart, or an empty string when there is nothing to draw."""
    points = sorted(samples, key=lambda sample: sample.at)
    if not points:
        return ""
    if len(points) > MAX_POINTS:
        step = len(points) / MAX_POINTS
        points = [points[int(i * step)] for i in range(MAX_POINTS)] + [points[-1]]
    capacity = max(sample.used + sample.free for sample in points)
    start = points[0].at
    history = max(now - start, timedelta(minutes=1))
    # The time axis goes on past now by as long again as the history, or to the full date
    # when that comes sooner, so the forecast line is seen reaching the top.
    end = now + history
    if outlook.full_at is not None and outlook.full_at < end:
        end = outlook.full_at
    span = (end - start).total_seconds() or 1.0

    def x(moment: datetime) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (moment - start).total_seconds() / span

    def y(used: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - used / capacity) if capacity else HEIGHT

    used_line = " ".join(f"{x(p.at):.1f},{y(p.used):.1f}" for p in points)
    parts = [
        f'<svg class="outlook-chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="#fff" stroke="#e3e6eb"/>',
        # The capacity: full at this line.
        f'<line class="capacity" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(capacity):.1f}" '
        f'y2="{y(capacity):.1f}" stroke="#c0392b" stroke-dasharray="2 3"/>',
        f'<text x="{LEFT - 6}" y="{y(capacity) + 4:.1f}" text-anchor="end" font-size="11">'
        f"{escape(size(capacity))}</text>",
        f'<text x="{LEFT - 6}" y="{y(0):.1f}" text-anchor="end" font-size="11">0</text>',
        f'<polyline class="used" points="{used_line}" fill="none" stroke="#2456c8" '
        'stroke-width="2"/>',
    ]
    last = points[-1]
    parts.append(
        f'<circle class="last" cx="{x(last.at):.1f}" cy="{y(last.used):.1f}" r="3" fill="#2456c8"/>'
    )
    if outlook.growth_per_day and outlook.growth_per_day > 0:
        target = outlook.full_at or end
        target = min(target, end)
        grown = last.used + outlook.growth_per_day * (target - last.at).total_seconds() / 86400
        parts.append(
            f'<line class="forecast" x1="{x(last.at):.1f}" y1="{y(last.used):.1f}" '
            f'x2="{x(target):.1f}" y2="{y(min(grown, capacity)):.1f}" stroke="#b7791f" '
            'stroke-width="2" stroke-dasharray="6 4"/>'
        )
    parts += [
        f'<line x1="{x(now):.1f}" x2="{x(now):.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
        'stroke="#9aa0a6" stroke-dasharray="1 3"/>',
        _label(LEFT, start, "start"),
        _label(x(now), now, "middle"),
        _label(WIDTH - RIGHT, end, "end"),
        "</svg>",
    ]
    return "".join(parts)


def _label(at: float, moment: datetime, anchor: str) -> str:
    return (
        f'<text x="{at:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" font-size="11">'
        f"{escape(moment.strftime('%Y-%m-%d %H:%M'))}</text>"
    )
