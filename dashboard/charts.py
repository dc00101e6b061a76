"""The analytics charts, each drawn from rows already aggregated in SQL.

Charts are Vega-Lite specifications written as plain dicts and drawn with `st.vega_lite_chart`:
building them through Altair validated every chart against the Vega-Lite schema on each run,
most of the Analytics page's time (bench/RESULTS.md, page time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st
from pydantic import BaseModel

if TYPE_CHECKING:
    from db.evidence import CostPoint

Spec = dict[str, Any]
LABELS = {"labelLimit": 260}
STATUS_COLORS = {
    "domain": ["pending", "processing", "completed", "failed", "cancelled"],
    "range": ["#9e9e9e", "#1e88e5", "#43a047", "#e53935", "#ffb300"],
}
# Altair's default view size, which the charts were designed with.
VIEW = {"view": {"continuousWidth": 300, "continuousHeight": 300}}
TYPES = {"N": "nominal", "Q": "quantitative", "T": "temporal", "O": "ordinal"}


@dataclass(frozen=True)
class Chart:
    """A chart's rows and its Vega-Lite specification (without the data)."""

    data: pd.DataFrame
    spec: Spec


def draw(chart: Chart, where: Any = st) -> None:
    """Draw chart at the container's full width (`where`: st, a column, a container)."""
    where.vega_lite_chart(chart.data, chart.spec, width="stretch")


def field(shorthand: str, **options: Any) -> Spec:
    """A channel from Altair-like shorthand: "model:N", "sum(cost):Q"."""
    name, _, kind = shorthand.rpartition(":")
    channel: Spec = {}
    if name.endswith(")") and "(" in name:
        aggregate, _, name = name[:-1].partition("(")
        channel["aggregate"] = aggregate
    channel |= {"field": name, "type": TYPES[kind]}
    return channel | options


def _chart(data: pd.DataFrame, **spec: Any) -> Chart:
    return Chart(data, {"config": VIEW, **spec})


def time_axis(points: pd.DataFrame) -> Spec:
    """The creation time, per day or per hour as the buckets are (UTC)."""
    hourly = "bucket" in points and bool(
        (pd.to_datetime(points["bucket"], utc=True).dt.hour != 0).any()
    )
    return {
        "title": "created, per hour (UTC)" if hourly else "created, per day (UTC)",
        "format": "%b %d %H:%M" if hourly else "%b %d",
        "labelAngle": -30,
    }


def frame(rows: Sequence[BaseModel]) -> pd.DataFrame:
    """Rows as a table, money as floats (Vega and Arrow take no Decimal)."""
    records = [
        {k: float(v) if isinstance(v, Decimal) else v for k, v in dict(row).items()} for row in rows
    ]
    return pd.DataFrame.from_records(records)


def rate_by_model(quality: pd.DataFrame) -> Chart:
    """Thumbs-up rate per model with its Wilson 95% interval and the counts behind it."""
    data = quality[quality["rated"] > 0].assign(
        counts=lambda d: d["thumbs_up"].astype(str) + " / " + d["rated"].astype(str)
    )
    y = field("model:N", title=None, axis=LABELS)
    tooltip = [
        field("model:N"),
        field("thumbs_up_rate:Q", format=".1%", title="thumbs-up rate"),
        field("ci_low:Q", format=".1%", title="95% low"),
        field("ci_high:Q", format=".1%", title="95% high"),
        field("thumbs_up:Q"),
        field("thumbs_down:Q"),
    ]
    bars = {
        "mark": {"type": "bar", "opacity": 0.8},
        "encoding": {
            "y": y,
            "x": field(
                "thumbs_up_rate:Q",
                title="thumbs-up rate (95% Wilson interval)",
                scale={"domain": [0, 1]},
                axis={"format": "%"},
            ),
            "tooltip": tooltip,
        },
    }
    interval = {
        "mark": {"type": "rule", "strokeWidth": 2, "color": "#212121"},
        "encoding": {"y": y, "x": field("ci_low:Q"), "x2": {"field": "ci_high"}},
    }
    labels = {
        "mark": {"type": "text", "align": "left", "dx": 6},
        "encoding": {"y": y, "x": field("ci_high:Q"), "text": field("counts:N")},
    }
    return _chart(data, layer=[bars, interval, labels])


def rate_over_time(points: pd.DataFrame) -> Chart:
    return _chart(
        points,
        height=280,
        mark={"type": "line", "point": True},
        encoding={
            "x": field("bucket:T", axis=time_axis(points)),
            "y": field(
                "thumbs_up_rate:Q",
                title="thumbs-up rate",
                axis={"format": ".0%"},
                scale={"domain": [0, 1]},
            ),
            "color": field("model:N", title="model"),
            "tooltip": [
                field("bucket:T"),
                field("model:N"),
                field("thumbs_up_rate:Q", format=".1%"),
                field("thumbs_up:Q"),
                field("rated:Q"),
            ],
        },
    )


def by_template(templates: pd.DataFrame) -> Chart:
    return _chart(
        templates,
        transform=[{"fold": ["thumbs_up", "thumbs_down"], "as": ["feedback", "count"]}],
        mark={"type": "bar"},
        encoding={
            "y": field("label:N", title=None, sort="-x", axis=LABELS),
            "x": field("count:Q", title="rated outputs", axis={"format": "d"}),
            "color": field(
                "feedback:N",
                scale={"domain": ["thumbs_up", "thumbs_down"], "range": ["#43a047", "#e53935"]},
            ),
            "tooltip": [
                field("label:N"),
                field("feedback:N"),
                field("count:Q"),
                field("outputs:Q"),
            ],
        },
    )


def reason_rows(rows: Sequence[Any]) -> pd.DataFrame:
    """Reason counts (tasks.analytics ModelReason, TemplateReason or ReasonPoint rows) with each
    one's share of its group's basis and that basis said in words."""
    from tasks.analytics import reason_basis

    data = frame(rows)
    if data.empty:
        return data
    return data.assign(
        share=data["outputs"] / data["basis"],
        basis_text=[
            reason_basis(r, n, b)
            for r, n, b in zip(data["reason"], data["outputs"], data["basis"], strict=True)
        ],
    )


def reasons_grid(reasons: pd.DataFrame, by: str, title: str) -> Chart:
    """Thumbs-down reasons per `by` (model, or a template's label): each cell the share of the
    row's thumbs-down outputs with a reason that give the column's reason, with its count."""
    y = field(f"{by}:N", title=None, axis=LABELS)
    x = field("reason:N", title="reason", axis={"labelAngle": -30})
    tooltip = [
        field(f"{by}:N", title=title),
        field("basis_text:N", title="basis"),
        field("share:Q", format=".0%", title="share"),
    ]
    cells = {
        "mark": {"type": "rect"},
        "encoding": {
            "y": y,
            "x": x,
            "color": field(
                "share:Q",
                title="share",
                scale={"domain": [0, 1], "scheme": "reds"},
                legend={"format": ".0%"},
            ),
            "tooltip": tooltip,
        },
    }
    counts = {
        "mark": {"type": "text", "baseline": "middle"},
        "encoding": {
            "y": y,
            "x": x,
            "text": field("outputs:Q"),
            "color": {
                "condition": {"test": "datum.share > 0.5", "value": "white"},
                "value": "#212121",
            },
            "tooltip": tooltip,
        },
    }
    return _chart(reasons, layer=[cells, counts])


def reasons_over_time(points: pd.DataFrame) -> Chart:
    """Thumbs-down reasons per hour or day, stacked by reason (an output may give several)."""
    return _chart(
        points,
        height=280,
        mark={"type": "bar"},
        encoding={
            "x": field("bucket:T", axis=time_axis(points)),
            "y": field(
                "outputs:Q",
                title="reasons given",
                stack=True,
                axis={"format": "d"},
            ),
            "color": field("reason:N", title="reason"),
            "tooltip": [
                field("bucket:T", title="from"),
                field("basis_text:N", title="basis"),
                field("share:Q", format=".0%", title="share"),
            ],
        },
    )


def volume_by_status(volume: pd.DataFrame) -> Chart:
    return _chart(
        volume,
        height=280,
        mark={"type": "bar"},
        encoding={
            "x": field("bucket:T", axis=time_axis(volume)),
            "y": field("outputs:Q", title="outputs created", stack=True),
            "color": field("status:N", title="status", scale=STATUS_COLORS),
            "tooltip": [field("bucket:T"), field("status:N"), field("outputs:Q")],
        },
    )


def failure_rate(quality: pd.DataFrame) -> Chart:
    return _chart(
        quality.dropna(subset=["failure_rate"]),
        mark={"type": "bar", "color": "#e53935"},
        encoding={
            "y": field("model:N", title=None, axis=LABELS),
            "x": field(
                "failure_rate:Q",
                title="failed / finished (cancelled left out)",
                axis={"format": ".0%"},
            ),
            "tooltip": [
                field("model:N"),
                field("failure_rate:Q", format=".1%", title="failure rate"),
                field("failed:Q"),
                field("completed:Q"),
                field("cancelled:Q"),
            ],
        },
    )


def latency(quality: pd.DataFrame) -> Chart:
    return _chart(
        quality.dropna(subset=["latency_p50_ms"]),
        transform=[
            {"fold": ["latency_p50_ms", "latency_p95_ms"], "as": ["percentile", "ms"]},
            {"calculate": "datum.ms / 1000", "as": "seconds"},
        ],
        mark={"type": "bar"},
        encoding={
            "y": field("model:N", title=None, axis=LABELS),
            "yOffset": field("percentile:N"),
            "x": field("seconds:Q", title="latency (s)"),
            "color": field(
                "percentile:N",
                scale={
                    "domain": ["latency_p50_ms", "latency_p95_ms"],
                    "range": ["#64b5f6", "#1565c0"],
                },
                legend={"labelExpr": "datum.label == 'latency_p50_ms' ? 'p50' : 'p95'"},
            ),
            "tooltip": [field("model:N"), field("percentile:N"), field("seconds:Q", format=".2f")],
        },
    )


def money(quality: pd.DataFrame, column: str, title: str) -> Chart:
    return _chart(
        quality.dropna(subset=[column]),
        mark={"type": "bar", "color": "#8e24aa"},
        encoding={
            "y": field("model:N", title=None, axis=LABELS),
            "x": field(f"{column}:Q", title=title, axis={"format": "$.4~f"}),
            "tooltip": [field("model:N"), field(f"{column}:Q", format="$.6f")],
        },
    )


def leaderboard_rates(board: pd.DataFrame) -> Chart:
    """The leaderboard's thumbs-up rate per model with its Wilson interval (as rate_by_model)."""
    return rate_by_model(
        board.rename(columns={"wilson_low": "ci_low", "wilson_high": "ci_high"}).assign(
            rated=lambda d: d["thumbs_up"] + d["thumbs_down"]
        )
    )


def cost_by(points: Sequence[CostPoint], by: str) -> pd.DataFrame:
    """Cost and outputs per time bucket and `by` ("model" or "user_name"), summed from the
    points per bucket, model and user: one row per bar segment."""
    totals: dict[tuple[Any, str], list[float]] = {}
    for point in points:
        summed = totals.setdefault((point.bucket, getattr(point, by)), [0.0, 0])
        summed[0] += float(point.cost)
        summed[1] += point.outputs
    return pd.DataFrame.from_records(
        [(bucket, name, cost, n) for (bucket, name), (cost, n) in totals.items()],
        columns=["bucket", by, "cost", "outputs"],
    )


def cost_over_time(points: pd.DataFrame, by: str, title: str) -> Chart:
    """Cost per time bucket as bars stacked by `by` (a column of cost_by: model or user_name)."""
    return _chart(
        points,
        height=280,
        mark={"type": "bar"},
        encoding={
            "x": field("bucket:T", axis=time_axis(points)),
            "y": field("sum(cost):Q", title="cost ($)", stack=True, axis={"format": "$.4~f"}),
            "color": field(f"{by}:N", title=title),
            "tooltip": [
                field("bucket:T", title="from"),
                field(f"{by}:N", title=title),
                field("sum(cost):Q", format="$.6f", title="cost"),
                field("sum(outputs):Q", title="outputs"),
            ],
        },
    )


JOB_STATUS_ORDER = ["todo", "doing", "succeeded", "failed", "cancelled", "aborted"]


def job_counts(rows: Sequence[BaseModel]) -> pd.DataFrame:
    """Jobs per queue (rows) and status (columns, every status, zero when none)."""
    if not rows:
        return pd.DataFrame(columns=JOB_STATUS_ORDER)
    table = frame(rows).pivot_table(
        index="queue_name", columns="status", values="jobs", fill_value=0, aggfunc="sum"
    )
    return table.reindex(columns=JOB_STATUS_ORDER, fill_value=0).rename_axis(index="queue")


def schema_rate_rows(rates: Sequence[Any]) -> pd.DataFrame:
    """The schema-valid rates by model as a table people read: each rate with its basis and its
    95 % interval (tasks.analytics.SchemaRate rows)."""
    from tasks.analytics import percent

    def interval(ci: tuple[float, float] | None) -> str:
        return "–" if ci is None else f"{percent(ci[0])} – {percent(ci[1])}"

    return pd.DataFrame(
        [
            {
                "model": r.model,
                "valid at the first try": f"{percent(r.first_try_rate)} "
                f"({r.first_try:,} of {r.judged:,})",
                "95% interval (first try)": interval(r.first_try_ci),
                "valid after re-asks": f"{percent(r.valid_rate)} ({r.valid:,} of {r.judged:,})",
                "95% interval (after re-asks)": interval(r.valid_ci),
            }
            for r in rates
        ]
    )
