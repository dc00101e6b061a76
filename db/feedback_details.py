"""Feedback details beyond the thumbs: outputs found by their comment, and reasons, comments and
corrected answers written directly (test helpers)."""

from __future__ import annotations

from datetime import datetime

import psycopg

from db.models import FeedbackEvent, LLMOutput
from db.queries import queries


def like_pattern(text: str) -> str:
    """A LIKE pattern matching text anywhere, its wildcards (% and _) and backslash taken
    literally (the queries escape with backslash)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_commented_outputs(
    conn: psycopg.Connection,
    comment_contains: str,
    *,
    user_id: int | None = None,
    status: str | None = None,
    model: str | None = None,
    format: str | None = None,
    feedback: str | None = None,
    template: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    batch_id: int | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[LLMOutput]:
    """One page of the outputs whose comment contains comment_contains (any case), newest
    first; pass the last id of a page as before_id for the next."""
    params = {
        "comment_pattern": like_pattern(comment_contains),
        "user_id": user_id,
        "status": status,
        "model": model,
        "format": format,
        "feedback": feedback,
        "template": template,
        "created_after": created_after,
        "created_before": created_before,
        "batch_id": batch_id,
        "before_id": before_id,
        "limit": limit,
    }
    rows = conn.execute(queries["list_commented_outputs"], params)
    return [LLMOutput.model_validate(r) for r in rows]


def set_feedback_details(
    conn: psycopg.Connection,
    output_id: int,
    *,
    reasons: list[str],
    comment: str | None,
    corrected_answer: str | None,
) -> bool:
    """Write an output's reasons, comment and corrected answer, recording no change; False when
    there is no such output."""
    params = {
        "id": output_id,
        "reasons": reasons,
        "comment": comment,
        "corrected_answer": corrected_answer,
    }
    return conn.execute(queries["set_feedback_details"], params).fetchone() is not None


def recent_feedback_events(
    conn: psycopg.Connection, output_id: int, limit: int
) -> list[FeedbackEvent]:
    """The latest `limit` feedback changes of an output, oldest first."""
    rows = conn.execute(queries["recent_feedback_events"], {"output_id": output_id, "limit": limit})
    return [FeedbackEvent.model_validate(r) for r in rows]
