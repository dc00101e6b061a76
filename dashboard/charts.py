"""The analytics charts (Altair), each drawn from rows already aggregated in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import altair as alt
import pandas as pd
from pydantic import BaseModel

LABELS = alt.Axis(labelLimit=260)
STATUS_COLORS = alt.Scale(
    domain=["pending", "processing", "completed", "failed", "cancelled"],
    range=["#9e9e9e", "#1e88e5", "#43a047", "#e53935", "#ffb300"],
)


def time_axis(points: pd.DataFrame) -> alt.Axis:
    """The creation time, per day or per hour as the buckets are (UTC)."""
    hourly = "bucket" in points and bool(
        (pd.to_datetime(points["bucket"], utc=True).dt.hour != 0).any()
    )
    return alt.Axis(
        title="created, per hour (UTC)" if hourly else "created, per day (UTC)",
        format="%b %d %H:%M" if hourly else "%b %d",
        labelAngle=-30,
    )


def frame(rows: Sequence[BaseModel]) -> pd.DataFrame:
    """Rows as a table, money as floats (Altair and Arrow take no Decimal)."""
    records = [
        {k: float(v) if isinstance(v, Decimal) else v for k, v in row.model_dump().items()}
        for row in rows
    ]
    return pd.DataFrame.from_records(records)


def rate_by_model(quality: pd.DataFrame) -> alt.LayerChart:
    """Thumbs-up rate per model with its Wilson 95% interval and the counts behind it."""
    data = quality[quality["rated"] > 0].assign(
        counts=lambda d: d["thumbs_up"].astype(str) + " / " + d["rated"].astype(str)
    )
    base = alt.Chart(data).encode(y=alt.Y("model:N", title=None, axis=LABELS))
    tooltip = [
        "model:N",
        alt.Tooltip("thumbs_up_rate:Q", format=".1%", title="thumbs-up rate"),
        alt.Tooltip("ci_low:Q", format=".1%", title="95% low"),
        alt.Tooltip("ci_high:Q", format=".1%", title="95% high"),
        "thumbs_up:Q",
        "thumbs_down:Q",
    ]
    bars = base.mark_bar(opacity=0.8).encode(
        x=alt.X(
            "thumbs_up_rate:Q",
            title="thumbs-up rate (95% Wilson interval)",
            scale=alt.Scale(domain=[0, 1]),
            axis=alt.Axis(format="%"),
        ),
        tooltip=tooltip,
    )
    interval = base.mark_rule(strokeWidth=2, color="#212121").encode(x="ci_low:Q", x2="ci_high:Q")
    labels = base.mark_text(align="left", dx=6).encode(x="ci_high:Q", text="counts:N")
    return bars + interval + labels


def rate_over_time(points: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(points, height=280)
        .mark_line(point=True)
        .encode(
            x=alt.X("bucket:T", axis=time_axis(points)),
            y=alt.Y(
                "thumbs_up_rate:Q",
                title="thumbs-up rate",
                axis=alt.Axis(format=".0%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            color=alt.Color("model:N", title="model"),
            tooltip=[
                "bucket:T",
                "model:N",
                alt.Tooltip("thumbs_up_rate:Q", format=".1%"),
                "thumbs_up:Q",
                "rated:Q",
            ],
        )
    )


def by_template(templates: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(templates)
        .transform_fold(["thumbs_up", "thumbs_down"], as_=["feedback", "count"])
        .mark_bar()
        .encode(
            y=alt.Y("label:N", title=None, sort="-x", axis=LABELS),
            x=alt.X("count:Q", title="rated outputs", axis=alt.Axis(format="d")),
            color=alt.Color(
                "feedback:N",
                scale=alt.Scale(domain=["thumbs_up", "thumbs_down"], range=["#43a047", "#e53935"]),
            ),
            tooltip=["label:N", "feedback:N", "count:Q", "outputs:Q"],
        )
    )


def volume_by_status(volume: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(volume, height=280)
        .mark_bar()
        .encode(
            x=alt.X("bucket:T", axis=time_axis(volume)),
            y=alt.Y("outputs:Q", title="outputs created", stack=True),
            color=alt.Color("status:N", title="status", scale=STATUS_COLORS),
            tooltip=["bucket:T", "status:N", "outputs:Q"],
        )
    )


def failure_rate(quality: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(quality.dropna(subset=["failure_rate"]))
        .mark_bar(color="#e53935")
        .encode(
            y=alt.Y("model:N", title=None, axis=LABELS),
            x=alt.X(
                "failure_rate:Q",
                title="failed / finished (cancelled left out)",
                axis=alt.Axis(format=".0%"),
            ),
            tooltip=[
                "model:N",
                alt.Tooltip("failure_rate:Q", format=".1%", title="failure rate"),
                "failed:Q",
                "completed:Q",
                "cancelled:Q",
            ],
        )
    )


def latency(quality: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(quality.dropna(subset=["latency_p50_ms"]))
        .transform_fold(["latency_p50_ms", "latency_p95_ms"], as_=["percentile", "ms"])
        .transform_calculate(seconds="datum.ms / 1000")
        .mark_bar()
        .encode(
            y=alt.Y("model:N", title=None, axis=LABELS),
            yOffset="percentile:N",
            x=alt.X("seconds:Q", title="latency (s)"),
            color=alt.Color(
                "percentile:N",
                scale=alt.Scale(
                    domain=["latency_p50_ms", "latency_p95_ms"], range=["#64b5f6", "#1565c0"]
                ),
                legend=alt.Legend(labelExpr="datum.label == 'latency_p50_ms' ? 'p50' : 'p95'"),
            ),
            tooltip=["model:N", "percentile:N", alt.Tooltip("seconds:Q", format=".2f")],
        )
    )


def money(quality: pd.DataFrame, field: str, title: str) -> alt.Chart:
    return (
        alt.Chart(quality.dropna(subset=[field]))
        .mark_bar(color="#8e24aa")
        .encode(
            y=alt.Y("model:N", title=None, axis=LABELS),
            x=alt.X(f"{field}:Q", title=title, axis=alt.Axis(format="$.4~f")),
            tooltip=["model:N", alt.Tooltip(f"{field}:Q", format="$.6f")],
        )
    )


def leaderboard_rates(board: pd.DataFrame) -> alt.LayerChart:
    """The leaderboard's thumbs-up rate per model with its Wilson interval (as rate_by_model)."""
    return rate_by_model(
        board.rename(columns={"wilson_low": "ci_low", "wilson_high": "ci_high"}).assign(
            rated=lambda d: d["thumbs_up"] + d["thumbs_down"]
        )
    )


def cost_over_time(points: pd.DataFrame, by: str, title: str) -> alt.Chart:
    """Cost per time bucket as bars stacked by `by` (a column: model or user_name)."""
    return (
        alt.Chart(points, height=280)
        .mark_bar()
        .encode(
            x=alt.X("bucket:T", axis=time_axis(points)),
            y=alt.Y("sum(cost):Q", title="cost ($)", stack=True, axis=alt.Axis(format="$.4~f")),
            color=alt.Color(f"{by}:N", title=title),
            tooltip=[
                alt.Tooltip("bucket:T", title="from"),
                alt.Tooltip(f"{by}:N", title=title),
                alt.Tooltip("sum(cost):Q", format="$.6f", title="cost"),
                alt.Tooltip("sum(outputs):Q", title="outputs"),
            ],
        )
    )


def throughput(points: pd.DataFrame) -> alt.Chart:
    """Jobs queued, succeeded and failed per hour."""
    names = {"deferred": "queued", "succeeded": "succeeded", "failed": "failed"}
    return (
        alt.Chart(points.assign(event=points["event"].map(names)), height=260)
        .mark_line(point=True)
        .encode(
            x=alt.X("hour:T", title=None),
            y=alt.Y("jobs:Q", title="jobs per hour"),
            color=alt.Color(
                "event:N",
                scale=alt.Scale(
                    domain=["queued", "succeeded", "failed"],
                    range=["#1e88e5", "#43a047", "#e53935"],
                ),
            ),
            tooltip=["hour:T", "event:N", "jobs:Q"],
        )
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
