"""Aggregates over outputs and their feedback, for the dashboard's analytics.

Every figure is computed in SQL; each function takes the same `OutputFilter` and returns a few
rows per model, template or time bucket, never one row per output (the CSV export aside, which
the server writes as CSV).

Ranges longer than SHORT_RANGE (or open) are answered from the analytics rollup (migration
0006) for their settled periods and from the outputs for the rest: counts, sums and rates are
the same as over the outputs alone; latency percentiles are within 9.05 % of the exact ones
(exact when no rolled-up period holds a latency of that model).
Such a call first rolls up what is missing in its range (at most LAZY_PERIODS periods), so a
database no worker refreshed yet still answers quickly after its first call. Shorter ranges
(charted per hour) read the outputs only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import psycopg

from db.models import Row
from db.queries import queries

Bucket = Literal["hour", "day"]

# A range up to this long reads the outputs directly (exact percentiles, few rows).
SHORT_RANGE = timedelta(days=3)
# How many periods (days, or hours of today) one aggregate may roll up before it answers.
LAZY_PERIODS = 16


class OutputFilter(Row):
    """Which outputs an aggregate covers; None means no restriction."""

    user_id: int | None = None
    model: str | None = None
    template: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class ModelStats(Row):
    model: str
    outputs: int
    completed: int
    failed: int
    cancelled: int = 0
    finished: int
    thumbs_up: int
    thumbs_down: int
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    cost: Decimal | None = None
    cost_per_thumbs_up: Decimal | None = None


class FeedbackPoint(Row):
    bucket: datetime
    model: str
    rated: int
    thumbs_up: int
    thumbs_up_rate: float


class VolumePoint(Row):
    bucket: datetime
    status: str
    outputs: int


class TemplateStats(Row):
    label: str
    template_md5: str
    outputs: int
    thumbs_up: int
    thumbs_down: int


class TemplateUse(Row):
    template: str
    last_used_at: datetime


def _params(flt: OutputFilter, **extra: Any) -> dict[str, Any]:
    return {**flt.model_dump(), **extra}


def _rolled_up(conn: psycopg.Connection, flt: OutputFilter) -> bool:
    """Whether this range is answered from the rollup; if so, roll up what it lacks first."""
    after, before = flt.created_after, flt.created_before
    if after is not None and before is not None and before - after <= SHORT_RANGE:
        return False
    refresh_rollup(conn, created_after=after, created_before=before, max_periods=LAZY_PERIODS)
    return True


def by_model(conn: psycopg.Connection, flt: OutputFilter) -> list[ModelStats]:
    name = "analytics_by_model_rolled_up" if _rolled_up(conn, flt) else "analytics_by_model"
    rows = conn.execute(queries[name], _params(flt))
    return [ModelStats.model_validate(r) for r in rows]


class SchemaValidity(Row):
    """One model's answers judged against their JSON Schemas."""

    model: str
    judged: int
    valid: int
    first_try: int


def schema_validity(conn: psycopg.Connection, flt: OutputFilter) -> list[SchemaValidity]:
    rows = conn.execute(queries["analytics_schema_validity"], _params(flt))
    return [SchemaValidity.model_validate(r) for r in rows]


def feedback_over_time(
    conn: psycopg.Connection, flt: OutputFilter, bucket: Bucket
) -> list[FeedbackPoint]:
    name = "analytics_feedback_over_time"
    if bucket == "day" and _rolled_up(conn, flt):
        name = "analytics_feedback_over_time_rolled_up"
    rows = conn.execute(queries[name], _params(flt, bucket=bucket))
    return [FeedbackPoint.model_validate(r) for r in rows]


def volume_over_time(
    conn: psycopg.Connection, flt: OutputFilter, bucket: Bucket
) -> list[VolumePoint]:
    name = "analytics_volume_over_time"
    if bucket == "day" and _rolled_up(conn, flt):
        name = "analytics_volume_over_time_rolled_up"
    rows = conn.execute(queries[name], _params(flt, bucket=bucket))
    return [VolumePoint.model_validate(r) for r in rows]


def by_template(conn: psycopg.Connection, flt: OutputFilter, limit: int) -> list[TemplateStats]:
    name = "analytics_by_template_rolled_up" if _rolled_up(conn, flt) else "analytics_by_template"
    rows = conn.execute(queries[name], _params(flt, limit=limit))
    return [TemplateStats.model_validate(r) for r in rows]


def refresh_rollup(
    conn: psycopg.Connection,
    *,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    max_periods: int | None = None,
) -> int:
    """Roll up the settled periods (UTC days, and the hours of the day still open, once 10
    minutes past their end) inside the range that are missing or changed since, newest first,
    at most `max_periods`; return how many. 0 at once when another refresh is running."""
    params = {
        "created_after": created_after,
        "created_before": created_before,
        "max_periods": max_periods,
    }
    return conn.execute(queries["analytics_refresh"], params).fetchone()["periods"]


async def refresh_rollup_async(
    conn: psycopg.AsyncConnection, *, max_periods: int | None = None
) -> int:
    """refresh_rollup over the whole history, on the worker's connections."""
    params = {"created_after": None, "created_before": None, "max_periods": max_periods}
    cur = await conn.execute(queries["analytics_refresh"], params)
    row = await cur.fetchone()
    return row["periods"]


def feedback_csv(conn: psycopg.Connection, flt: OutputFilter, limit: int) -> str:
    """The rated outputs (newest first, at most `limit`) as CSV text with a header line, written
    by the server (COPY): output_id, created_at, user_name, model, format, feedback,
    feedback_at, latency_ms, cost, template, reasons ("; " between them), comment,
    corrected_answer, judge_verdicts (a JSON array of {judge, verdict, reason}; empty when no
    judge's answer is in). Text a spreadsheet would run as a formula starts
    with `'` (llmjobs_csv_cell, the rule of tasks.csvcells); numbers are as they are."""
    with conn.transaction():
        conn.execute(queries["analytics_feedback_csv_settings"])
        with (
            conn.cursor() as cur,
            cur.copy(queries["analytics_feedback_csv"], _params(flt, limit=limit)) as copy,
        ):
            return b"".join(bytes(chunk) for chunk in copy).decode()


def models_used(conn: psycopg.Connection, user_id: int | None) -> list[str]:
    """The models of a user's outputs (everyone's when user_id is None), by name."""
    if user_id is None:
        rows = conn.execute(queries["analytics_models_used"])
    else:
        rows = conn.execute(queries["analytics_models_used_by"], {"user_id": user_id})
    return [r["model"] for r in rows]


# Past this many templates (of a user, or everyone's), templates_used reads the latest outputs
# instead of probing the index once per template.
SKIP_SCAN_MOST = 200


def templates_used(
    conn: psycopg.Connection,
    user_id: int | None,
    limit: int,
    *,
    most: int = SKIP_SCAN_MOST,
    scan: int = 5000,
) -> list[TemplateUse]:
    """The `limit` templates used most recently (by user_id, or anyone), newest first: every
    template's latest output when there are at most `most` templates, else the templates among
    the latest `scan` outputs."""
    params = {"user_id": user_id, "limit": limit, "most": most, "scan": scan}
    name = "analytics_templates_used" if user_id is None else "analytics_templates_used_by"
    rows = conn.execute(queries[name], params).fetchall()
    if not all(r["complete"] for r in rows):
        rows = conn.execute(queries["analytics_templates_used_recently"], params).fetchall()
    return [TemplateUse(template=r["template"], last_used_at=r["last_used_at"]) for r in rows]


def set_output_figures(
    conn: psycopg.Connection,
    output_id: int,
    *,
    latency_ms: int | None,
    cost: float | Decimal | None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    created_at: datetime | None = None,
) -> bool:
    """Set an output's usage figures (and creation time) directly: test data and imports only,
    never the worker's path. False when there is no such output."""
    params = {
        "id": output_id,
        "latency_ms": latency_ms,
        "cost": cost,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "created_at": created_at,
    }
    return conn.execute(queries["analytics_set_output_figures"], params).fetchone() is not None
