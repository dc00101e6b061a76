"""Analytics of outputs and feedback, and the other read-only views the dashboard needs: the
choices for its filters and an output's lineage.

Every aggregate is computed in SQL (db/analytics.py). What is left here is scope (an analyst sees
only their own outputs, an admin everyone's or one user's), date ranges, and the Wilson interval.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from db import analytics, batches, evidence, outputs, reasons
from db.analytics import Bucket, FeedbackPoint, OutputFilter, TemplateStats, VolumePoint
from db.evidence import CostPoint
from db.models import FEEDBACK_VALUES, STATUSES, LLMOutput, User
from db.reasons import ModelReason, ReasonPoint, TemplateReason
from tasks.errors import InvalidInput

__all__ = [
    "FEEDBACK_VALUES",
    "STATUSES",
    "CostPoint",
    "FeedbackPoint",
    "ModelReason",
    "OutputFilter",
    "ReasonPoint",
    "TemplateReason",
    "TemplateStats",
    "VolumePoint",
]

Z_95 = 1.959963984540054  # the standard normal quantile for a two-sided 95% interval
EXPORT_LIMIT = 50_000
# A range up to this long is charted per hour, a longer one per day.
HOURLY_UP_TO = timedelta(days=3)


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion successes/n; None when n is 0.

    Raises ValueError when successes is not between 0 and n.
    """
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and {n}, not {successes}")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


class ModelQuality(BaseModel):
    """One model's figures over the filtered outputs."""

    model: str
    outputs: int
    completed: int
    failed: int
    cancelled: int = 0
    rated: int
    thumbs_up: int
    thumbs_down: int
    thumbs_up_rate: float | None
    ci_low: float | None
    ci_high: float | None
    failure_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    cost: Decimal | None
    cost_per_thumbs_up: Decimal | None


class Totals(BaseModel):
    outputs: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    rated: int = 0
    thumbs_up: int = 0
    thumbs_up_rate: float | None = None
    cost: Decimal | None = None


def percent(rate: float | None) -> str:
    """A rate as people write it: "0 %", "12.5 %", "100 %" ("–" when there is none)."""
    if rate is None:
        return "–"
    text = f"{rate * 100:.1f}".removesuffix(".0")
    return f"{text} %"


def rate_basis(part: int, whole: int, of: str, outputs: int) -> str:
    """A rate with what it is computed from: "100 % of 2 rated, 8 outputs"."""
    counted = f"{outputs:,} output" if outputs == 1 else f"{outputs:,} outputs"
    return f"{percent(_ratio(part, whole))} of {whole:,} {of}, {counted}"


def zero_cost_reason(cost: Decimal | None, models: list[str], offline: set[str]) -> str | None:
    """Why a range's cost is nothing (None when it is not): offline models, unknown prices, or
    answers that cost nothing."""
    if cost:
        return None
    if models and all(m in offline for m in models):
        return "All outputs in this range used offline models, which cost nothing."
    if cost is None:
        return (
            "No prices known for these models, so no cost is recorded "
            "(set LLMJOBS_MODEL_PRICES for local or custom models)."
        )
    return (
        "Every output in this range cost nothing: offline or free models, "
        "or answers reused from the cache."
    )


class FilterChoices(BaseModel):
    models: list[str]
    templates: list[str]


class Lineage(BaseModel):
    parent_id: int | None
    children: list[LLMOutput]


class CacheHitRate(BaseModel):
    """Completed outputs that asked for the response cache, and how many of them it answered."""

    eligible: int
    hits: int

    @property
    def rate(self) -> float | None:
        return _ratio(self.hits, self.eligible)


def period(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """The half-open UTC range [start 00:00, the day after end 00:00). Raises InvalidInput
    (field="dates") when start is after end."""
    if start and end and start > end:
        raise InvalidInput("dates", "the start date is after the end date")
    after = datetime.combine(start, time.min, UTC) if start else None
    before = datetime.combine(end + timedelta(days=1), time.min, UTC) if end else None
    return after, before


def output_filter(
    *,
    start: date | None = None,
    end: date | None = None,
    model: str | None = None,
    template: str | None = None,
    user_id: int | None = None,
) -> OutputFilter:
    """The filter of a date range (inclusive days, UTC), a model, a template and a user."""
    after, before = period(start, end)
    return OutputFilter(
        user_id=user_id,
        model=model or None,
        template=template or None,
        created_after=after,
        created_before=before,
    )


def bucket_for(flt: OutputFilter) -> Bucket:
    """Hourly buckets for a short range, daily ones otherwise (or when the range is open)."""
    if flt.created_after and flt.created_before:
        return "hour" if flt.created_before - flt.created_after <= HOURLY_UP_TO else "day"
    return "day"


def _scoped(viewer: User, flt: OutputFilter) -> OutputFilter:
    """An analyst's filter always covers only their outputs; an admin's what it says."""
    if viewer.is_admin:
        return flt
    return flt.model_copy(update={"user_id": viewer.id})


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def model_quality(pool: ConnectionPool, viewer: User, flt: OutputFilter) -> list[ModelQuality]:
    """Per model: thumbs-up rate with its Wilson 95% interval, failure rate (of finished
    outputs; a cancelled output is neither finished nor failed, it is counted apart), latency
    p50/p95 (of completed ones), cost and cost per thumbs up."""
    with pool.connection() as conn:
        rows = analytics.by_model(conn, _scoped(viewer, flt))
    found = []
    for row in rows:
        rated = row.thumbs_up + row.thumbs_down
        interval = wilson_interval(row.thumbs_up, rated)
        found.append(
            ModelQuality(
                model=row.model,
                outputs=row.outputs,
                completed=row.completed,
                failed=row.failed,
                cancelled=row.cancelled,
                rated=rated,
                thumbs_up=row.thumbs_up,
                thumbs_down=row.thumbs_down,
                thumbs_up_rate=_ratio(row.thumbs_up, rated),
                ci_low=interval[0] if interval else None,
                ci_high=interval[1] if interval else None,
                failure_rate=_ratio(row.failed, row.finished),
                latency_p50_ms=row.latency_p50_ms,
                latency_p95_ms=row.latency_p95_ms,
                cost=row.cost,
                cost_per_thumbs_up=row.cost_per_thumbs_up,
            )
        )
    return found


class SchemaRate(BaseModel):
    """One model's schema-valid rates: of its answers judged against a JSON Schema, the share
    valid at the first try and after re-asks, each with its Wilson 95 % interval."""

    model: str
    judged: int
    valid: int
    first_try: int
    first_try_rate: float | None
    first_try_ci: tuple[float, float] | None
    valid_rate: float | None
    valid_ci: tuple[float, float] | None


def schema_rates(pool: ConnectionPool, viewer: User, flt: OutputFilter) -> list[SchemaRate]:
    """Per model with any output judged against a JSON Schema (completed, or failed because no
    answer validated): its schema-valid rate at the first try and after re-asks."""
    with pool.connection() as conn:
        rows = analytics.schema_validity(conn, _scoped(viewer, flt))
    return [
        SchemaRate(
            model=row.model,
            judged=row.judged,
            valid=row.valid,
            first_try=row.first_try,
            first_try_rate=_ratio(row.first_try, row.judged),
            first_try_ci=wilson_interval(row.first_try, row.judged),
            valid_rate=_ratio(row.valid, row.judged),
            valid_ci=wilson_interval(row.valid, row.judged),
        )
        for row in rows
    ]


def totals(rows: list[ModelQuality]) -> Totals:
    """The sums over the per-model rows (counts and cost add up across models)."""
    costs = [r.cost for r in rows if r.cost is not None]
    rated = sum(r.rated for r in rows)
    thumbs_up = sum(r.thumbs_up for r in rows)
    return Totals(
        outputs=sum(r.outputs for r in rows),
        completed=sum(r.completed for r in rows),
        failed=sum(r.failed for r in rows),
        cancelled=sum(r.cancelled for r in rows),
        rated=rated,
        thumbs_up=thumbs_up,
        thumbs_up_rate=_ratio(thumbs_up, rated),
        cost=sum(costs, Decimal(0)) if costs else None,
    )


def _within_days(
    points: list[FeedbackPoint] | list[VolumePoint] | list[ReasonPoint],
) -> OutputFilter | None:
    """The days a daily series covers, when they are too few to draw a line (a day or two):
    the range to read again per hour. None when the days already make a line."""
    days = sorted({p.bucket for p in points})
    if not days or len(days) > 2 or days[-1] - days[0] > timedelta(days=1):
        return None
    return OutputFilter(created_after=days[0], created_before=days[-1] + timedelta(days=1))


def _narrowed(flt: OutputFilter, days: OutputFilter) -> OutputFilter:
    after = max(d for d in (flt.created_after, days.created_after) if d is not None)
    before = min(d for d in (flt.created_before, days.created_before) if d is not None)
    return flt.model_copy(update={"created_after": after, "created_before": before})


def feedback_over_time(
    pool: ConnectionPool, viewer: User, flt: OutputFilter
) -> list[FeedbackPoint]:
    """Thumbs-up rate per model per hour or day (buckets with no rated output are left out).
    A long range whose rated outputs fall on a day or two is drawn per hour of those days."""
    scoped = _scoped(viewer, flt)
    with pool.connection() as conn:
        points = analytics.feedback_over_time(conn, scoped, bucket_for(flt))
        days = _within_days(points) if bucket_for(flt) == "day" else None
        if days is not None:
            points = analytics.feedback_over_time(conn, _narrowed(scoped, days), "hour")
        return points


def volume_over_time(pool: ConnectionPool, viewer: User, flt: OutputFilter) -> list[VolumePoint]:
    """Outputs created per hour or day, by status (cancelled apart). A long range whose outputs
    fall on a day or two is drawn per hour of those days."""
    scoped = _scoped(viewer, flt)
    with pool.connection() as conn:
        points = analytics.volume_over_time(conn, scoped, bucket_for(flt))
        days = _within_days(points) if bucket_for(flt) == "day" else None
        if days is not None:
            points = analytics.volume_over_time(conn, _narrowed(scoped, days), "hour")
        return points


def cost_over_time(pool: ConnectionPool, viewer: User, flt: OutputFilter) -> list[CostPoint]:
    """Cost per hour or day, by model and user (aggregated in SQL)."""
    scoped = _scoped(viewer, flt)
    with pool.connection() as conn:
        return evidence.cost_over_time(
            conn,
            bucket=bucket_for(flt),
            user_id=scoped.user_id,
            created_after=scoped.created_after,
            created_before=scoped.created_before,
            model=scoped.model,
            template=scoped.template,
        )


def top_templates(
    pool: ConnectionPool, viewer: User, flt: OutputFilter, limit: int = 10
) -> list[TemplateStats]:
    """The `limit` templates with the most rated outputs, with their feedback counts; templates
    with no rated output are left out."""
    if not 1 <= limit <= 100:
        raise InvalidInput("limit", "must be between 1 and 100")
    with pool.connection() as conn:
        found = analytics.by_template(conn, _scoped(viewer, flt), limit)
    # the most rated come first: the unrated ones are only the tail
    return [t for t in found if t.thumbs_up + t.thumbs_down]


def reason_basis(reason: str, outputs: int, basis: int) -> str:
    """A reason's count with what it is counted of: "wrong: 12 of 40 thumbs-down with a
    reason"."""
    return f"{reason}: {outputs:,} of {basis:,} thumbs-down with a reason"


def reasons_by_model(pool: ConnectionPool, viewer: User, flt: OutputFilter) -> list[ModelReason]:
    """Per model and reason: the thumbs-down outputs giving that reason, of the model's
    thumbs-down outputs with any reason (an output may give several)."""
    with pool.connection() as conn:
        return reasons.by_model(conn, _scoped(viewer, flt))


def reasons_by_template(
    pool: ConnectionPool, viewer: User, flt: OutputFilter, limit: int = 10
) -> list[TemplateReason]:
    """reasons_by_model per template, for the `limit` templates with the most thumbs-down
    outputs with a reason."""
    if not 1 <= limit <= 100:
        raise InvalidInput("limit", "must be between 1 and 100")
    with pool.connection() as conn:
        return reasons.by_template(conn, _scoped(viewer, flt), limit)


def reasons_over_time(pool: ConnectionPool, viewer: User, flt: OutputFilter) -> list[ReasonPoint]:
    """reasons_by_model per hour or day, bucketed as the page's other series: a long range
    whose thumbs-down reasons fall on a day or two is drawn per hour of those days."""
    scoped = _scoped(viewer, flt)
    with pool.connection() as conn:
        points = reasons.over_time(conn, scoped, bucket_for(flt))
        days = _within_days(points) if bucket_for(flt) == "day" else None
        if days is not None:
            points = reasons.over_time(conn, _narrowed(scoped, days), "hour")
        return points


def feedback_csv(
    pool: ConnectionPool, viewer: User, flt: OutputFilter, limit: int = EXPORT_LIMIT
) -> str:
    """The rated outputs (newest first, at most `limit`) as CSV text with a header line."""
    with pool.connection() as conn:
        return analytics.feedback_csv(conn, _scoped(viewer, flt), limit)


def cache_hit_rate(pool: ConnectionPool, viewer: User, flt: OutputFilter) -> CacheHitRate:
    """The response cache's hits among the completed outputs that asked for it, within the
    filter (dates, model, template) and the viewer's scope."""
    scoped = _scoped(viewer, flt)
    with pool.connection() as conn:
        found = batches.cache_hit_rate(
            conn,
            user_id=scoped.user_id,
            model=scoped.model,
            template=scoped.template,
            created_after=scoped.created_after,
            created_before=scoped.created_before,
        )
    return CacheHitRate(**found)


def filter_choices(pool: ConnectionPool, viewer: User, limit: int = 50) -> FilterChoices:
    """The models and the most recently used templates among the outputs the viewer may see."""
    user_id = None if viewer.is_admin else viewer.id
    with pool.connection() as conn:
        models = analytics.models_used(conn, user_id)
        templates = [t.template for t in analytics.templates_used(conn, user_id, limit)]
    return FilterChoices(models=models, templates=templates)


def lineage(pool: ConnectionPool, output: LLMOutput, viewer: User) -> Lineage:
    """The output's parent (when the viewer may see it) and the children the viewer may see."""
    viewer_id = None if viewer.is_admin else viewer.id
    with pool.connection() as conn:
        parent = (
            outputs.get_output(conn, output.parent_id, viewer_id=viewer_id)
            if output.parent_id
            else None
        )
        children = outputs.output_children(conn, output.id)
    visible = [c for c in children if viewer.is_admin or c.user_id == viewer.id]
    return Lineage(parent_id=parent.id if parent else None, children=visible)
