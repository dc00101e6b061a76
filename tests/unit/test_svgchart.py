"""The server-drawn line chart: one line and one tooltip per point, text escaped, nothing drawn
without points, and over a span every bucket of it."""

from __future__ import annotations

import re
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


def test_a_span_draws_every_bucket_of_the_window_aligned_on_the_points():
    # one busy minute in the last hour: the lines run over the whole hour, 0 elsewhere
    end = T0 + timedelta(minutes=59, seconds=30)
    points = [(T0 + timedelta(minutes=50), "queued", 7)]
    svg = svgchart.lines(points, {"queued": "#00f"}, unit="minute", span=(T0, end))
    titles = re.findall(r"<title>queued (\d\d:\d\d): (\d+)</title>", svg)
    assert len(titles) == 60
    assert titles[0] == ("05:00", "0") and titles[-1] == ("05:59", "0")
    assert ("05:50", "7") in titles and sum(int(n) for _, n in titles) == 7
    # hours of a database whose buckets start at half past: the added buckets do too, 04:30 to
    # 07:30 over 05:00 to 08:00 (on-the-hour ones would make 5 points)
    half = T0 + timedelta(minutes=30)
    svg = svgchart.lines(
        [(half, "failed", 2)], {"failed": "#f00"}, unit="hour", span=(T0, T0 + timedelta(hours=3))
    )
    assert svg.count("<title>failed ") == 4
