"""The server-drawn line chart: one line and one tooltip per point, text escaped, nothing drawn
without points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard import svgchart

T0 = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)


def test_lines_draw_each_series_with_tooltips_and_escape_text():
    points = [(T0, "queued", 5), (T0 + timedelta(minutes=1), "queued", 10), (T0, "failed", 1)]
    svg = svgchart.lines(points, {"queued": "#00f", "failed": "#f00", "<b>": "#0f0"}, unit="minute")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<polyline") == 3
    assert "<title>queued 05:01: 10</title>" in svg
    assert "<title>failed 05:01: 0</title>" in svg  # a missing point counts 0
    assert "&lt;b&gt;" in svg and "<b>" not in svg
    assert ">10<" in svg  # the top of the axis


def test_lines_without_points_draw_nothing():
    assert svgchart.lines([], {"queued": "#00f"}, unit="hour") == ""
    assert svgchart.lines([(T0, "other", 3)], {"queued": "#00f"}, unit="hour") == ""
