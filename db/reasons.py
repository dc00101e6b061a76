"""Aggregates over the reasons people give with a thumbs down, for the dashboard's analytics.

Each function takes the analytics `OutputFilter` and reads only the outputs that have reasons
(the partial index llm_outputs_reasons_idx), whatever the range: they are few, so no rollup is
needed. A row counts the thumbs-down outputs giving one reason in one group, with the group's
basis (its thumbs-down outputs with any reason).
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from db.analytics import Bucket, OutputFilter
from db.models import Row
from db.queries import queries


class ReasonCount(Row):
    """Thumbs-down outputs giving `reason`, of `basis` thumbs-down outputs with a reason."""

    reason: str
    outputs: int
    basis: int


class ModelReason(ReasonCount):
    model: str


class TemplateReason(ReasonCount):
    label: str
    template_md5: str


class ReasonPoint(ReasonCount):
    bucket: datetime


def by_model(conn: psycopg.Connection, flt: OutputFilter) -> list[ModelReason]:
    """Per model (by name) and reason, the most given first."""
    rows = conn.execute(queries["reasons_by_model"], flt.model_dump())
    return [ModelReason.model_validate(r) for r in rows]


def by_template(conn: psycopg.Connection, flt: OutputFilter, limit: int) -> list[TemplateReason]:
    """Per template and reason, for the `limit` templates with the most thumbs-down outputs
    with a reason (those first)."""
    rows = conn.execute(queries["reasons_by_template"], {**flt.model_dump(), "limit": limit})
    return [TemplateReason.model_validate(r) for r in rows]


def over_time(conn: psycopg.Connection, flt: OutputFilter, bucket: Bucket) -> list[ReasonPoint]:
    """Per time bucket (hour or day, UTC) and reason, oldest first; buckets with no thumbs-down
    output with a reason are left out."""
    rows = conn.execute(queries["reasons_over_time"], {**flt.model_dump(), "bucket": bucket})
    return [ReasonPoint.model_validate(r) for r in rows]
