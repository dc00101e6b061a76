"""A line chart drawn as inline SVG on the server: no chart library to load in the browser (a
Vega-Lite chart costs a fresh page about a second there), for pages that must stay fast. Each
point has a title (a tooltip where the SVG is inlined)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape

WIDTH, HEIGHT = 900, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 110, 12, 28


def lines(
    points: Sequence[tuple[datetime, str, int]],
    series: dict[str, str],
    *,
    unit: str,
    span: tuple[datetime, datetime] | None = None,
) -> str:
    """SVG of one line per series (name -> colour) over time; points are (time, series, value),
    each time the start of its bucket, a `unit` ("minute" or "hour") long. Series not named in
    `series` are left out; a missing point counts 0. With a span (start, end), the line runs
    over every bucket of it, not only from the first point to the last."""
    times = sorted({at for at, name, _ in points if name in series})
    if not times:
        return ""
    if span is not None:
        times = sorted(set(times) | set(_buckets(times[0], span, unit)))
    values = {(at, name): value for at, name, value in points}
    top = max(1, max(values.get((at, name), 0) for at in times for name in series))
    span = (times[-1] - times[0]).total_seconds() or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: datetime) -> float:
        return LEFT + plot_w * ((at - times[0]).total_seconds() / span if len(times) > 1 else 0.5)

    def y(value: int) -> float:
        return TOP + plot_h * (1 - value / top)

    fmt = "%H:%M" if unit == "minute" else "%d %b %H:00"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" role="img" aria-label="jobs per {unit}" '
        'style="font: 12px sans-serif; fill: #555">',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" '
        'stroke="#ccc"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT + plot_w}" y2="{TOP}" stroke="#eee"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{top:,}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h + 4}" text-anchor="end">0</text>',
        f'<text x="{LEFT}" y="{HEIGHT - 8}">{times[0]:{fmt}}</text>',
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 8}" text-anchor="end">{times[-1]:{fmt}}</text>',
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"jobs per {escape(unit)} (UTC)</text>",
    ]
    for row, (name, colour) in enumerate(series.items()):
        coords = [(x(at), y(values.get((at, name), 0)), at) for at in times]
        path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _ in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for cx, cy, at in coords:
            value = values.get((at, name), 0)
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)} {at:{fmt}}: {value:,}</title></circle>"
            )
        ly = TOP + 8 + row * 20
        parts.append(
            f'<circle cx="{WIDTH - RIGHT + 20}" cy="{ly - 4}" r="5" fill="{colour}"/>'
            f'<text x="{WIDTH - RIGHT + 30}" y="{ly}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _buckets(known: datetime, span: tuple[datetime, datetime], unit: str) -> list[datetime]:
    """The starts of the buckets that overlap span, aligned on a known bucket start (so they
    meet the database's buckets whatever its time zone)."""
    step = timedelta(minutes=1) if unit == "minute" else timedelta(hours=1)
    start, end = span
    at = known - step * ((known - start) // step + 1)  # at or before the bucket holding start
    while at + step <= start:
        at += step
    found = []
    while at <= end:
        found.append(at)
        at += step
    return found
