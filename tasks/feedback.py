"""Feedback on outputs: thumbs up, thumbs down or none, reason tags from a list admins keep, a
comment and a corrected answer (what the answer should have been). Each change is kept as an
event with who and when."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from db import feedback_details
from db import outputs as outputs_db
from db.models import FEEDBACK_VALUES, FeedbackEvent, FeedbackReason, User
from tasks import outputs
from tasks.errors import Conflict, Forbidden, InvalidInput, NotFound
from tasks.logs import get_logger

log = get_logger("llmjobs.submit")

MAX_REASONS = 10  # tags on one output
MAX_COMMENT_CHARS = 2_000
MAX_CORRECTED_CHARS = 50_000
MAX_LISTED_REASONS = 50  # reasons on the list admins keep
REASON_PATTERN = "a-z, 0-9, space, - and _, starting with a letter or digit, at most 32 characters"
MAX_DESCRIPTION_CHARS = 200

# Keeps a missing argument apart from None (which clears a comment or a corrected answer).
KEEP: Any = object()


def _text(field: str, value: Any, limit: int) -> str | None:
    """A free-text part: None or "" clears it; else text without NUL, at most limit characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, "must be text")
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    if len(value) > limit:
        raise InvalidInput(field, f"must be at most {limit:,} characters (got {len(value):,})")
    return value if value.strip() else None


def reason_name(value: Any, field: str = "name") -> str:
    """A reason's name, refused unless it fits the list's pattern."""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be text")
    name = " ".join(value.split()).lower()
    if not name or len(name) > 32 or name[0] in " -_":
        raise InvalidInput(field, f"a reason is {REASON_PATTERN}")
    if any(not (c.isascii() and (c.isalnum() or c in " -_")) for c in name):
        raise InvalidInput(field, f"a reason is {REASON_PATTERN}")
    return name


def _reasons(conn: psycopg.Connection, given: Any) -> list[str]:
    """Tags from the list, each once, in the list's order; unknown ones refused by name."""
    if isinstance(given, str) or not isinstance(given, Sequence):
        raise InvalidInput("reasons", "must be a list of reasons")
    if len(given) > MAX_REASONS:
        raise InvalidInput("reasons", f"at most {MAX_REASONS} reasons on one output")
    if any(not isinstance(tag, str) for tag in given):
        raise InvalidInput("reasons", "each reason must be text")
    known = [r.name for r in outputs_db.feedback_reasons(conn)]
    wanted = {" ".join(tag.split()).lower() for tag in given}
    unknown = sorted(wanted - set(known))
    if unknown:
        shown = ", ".join(repr(tag[:40]) for tag in unknown[:3])
        raise InvalidInput(
            "reasons", f"unknown reason {shown}: choose from {', '.join(known) or 'none yet'}"
        )
    return [name for name in known if name in wanted]


def checked_details(
    conn: psycopg.Connection,
    reasons: Sequence[str],
    comment: str | None,
    corrected_answer: str | None,
) -> tuple[list[str], str | None, str | None]:
    """Reasons, a comment and a corrected answer as set_feedback keeps them (reasons from the
    list, in its order; empty texts as None); InvalidInput naming the part otherwise."""
    return (
        _reasons(conn, reasons),
        _text("comment", comment, MAX_COMMENT_CHARS),
        _text("corrected_answer", corrected_answer, MAX_CORRECTED_CHARS),
    )


def set_feedback(
    pool: ConnectionPool,
    output_id: int,
    user: User,
    feedback: str | None = None,
    *,
    reasons: Sequence[str] | None = None,
    comment: str | None = KEEP,
    corrected_answer: str | None = KEEP,
) -> FeedbackEvent:
    """Change the feedback of a completed output (owner or admin only). Each part left out is
    kept: `feedback` (thumbs_up, thumbs_down, none), `reasons` (tags from the list; [] clears
    them), `comment` and `corrected_answer` (None or "" clears them).

    Raises InvalidInput (naming the part), NotFound (not visible), Conflict (not completed).
    """
    with pool.connection() as conn:
        event, model, job_id = set_feedback_on(
            conn,
            output_id,
            user,
            feedback,
            reasons=reasons,
            comment=comment,
            corrected_answer=corrected_answer,
        )
    logged(event, user, model, job_id)
    return event


def set_feedback_on(
    conn: psycopg.Connection,
    output_id: int,
    user: User,
    feedback: str | None = None,
    *,
    reasons: Sequence[str] | None = None,
    comment: str | None = KEEP,
    corrected_answer: str | None = KEEP,
) -> tuple[FeedbackEvent, str, int | None]:
    """set_feedback on conn, in the caller's transaction (nothing logged: see `logged`); the
    event, and the output's model and job id."""
    if feedback is not None and feedback not in FEEDBACK_VALUES:
        raise InvalidInput("feedback", f"must be one of {', '.join(FEEDBACK_VALUES)}")
    set_comment = comment is not KEEP
    set_corrected = corrected_answer is not KEEP
    comment_text = _text("comment", comment, MAX_COMMENT_CHARS) if set_comment else None
    corrected = (
        _text("corrected_answer", corrected_answer, MAX_CORRECTED_CHARS) if set_corrected else None
    )
    if feedback is None and reasons is None and not set_comment and not set_corrected:
        raise InvalidInput("feedback", "give feedback, reasons, a comment or a corrected answer")
    output = outputs.find_output(conn, output_id, user)  # owner or admin, else NotFound
    tags = None if reasons is None else _reasons(conn, reasons)
    event = outputs_db.set_feedback(
        conn,
        output_id,
        user_id=user.id,
        feedback=feedback,
        reasons=tags,
        comment=comment_text,
        set_comment=set_comment,
        corrected_answer=corrected,
        set_corrected=set_corrected,
    )
    if event is None:
        raise Conflict(
            f"output {output_id} is {output.status}: only completed outputs take feedback"
        )
    return event, output.model, output.job_id


def logged(event: FeedbackEvent, user: User, model: str, job_id: int | None) -> None:
    """The log line of a feedback change: what changed, never the text itself (comments and
    corrected answers may hold anything)."""
    log.info(
        "feedback",
        output_id=event.output_id,
        job_id=job_id,
        user_id=user.id,
        model=model,
        old=event.old_value,
        new=event.new_value,
        reasons=event.reasons,
        changed=event.changed,
    )


def list_reasons(pool: ConnectionPool) -> list[FeedbackReason]:
    """The reasons a person may give, in order."""
    with pool.connection() as conn:
        return outputs_db.feedback_reasons(conn)


def add_reason(
    pool: ConnectionPool,
    admin: User,
    name: Any,
    description: Any = "",
    position: Any = None,
) -> FeedbackReason:
    """Add a reason to the list, or change its description and place (admins only). A
    description or position of None keeps the reason's own (a new one: empty, and last)."""
    if not admin.is_admin:
        raise Forbidden("only admins change the reasons list")
    tag = reason_name(name)
    if description is not None and (not isinstance(description, str) or "\x00" in description):
        raise InvalidInput("description", "must be text without NUL characters")
    description = None if description is None else " ".join(description.split())
    if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput("description", f"must be at most {MAX_DESCRIPTION_CHARS} characters")
    if position is not None and (
        isinstance(position, bool) or not isinstance(position, int) or not 0 <= position <= 1000
    ):
        raise InvalidInput("position", "must be a whole number from 0 to 1000")
    with pool.connection() as conn, conn.transaction():
        # one list change at a time, so the cap holds under concurrent admins
        outputs_db.lock_feedback_reasons(conn)
        listed = outputs_db.feedback_reasons(conn)
        if tag not in {r.name for r in listed} and len(listed) >= MAX_LISTED_REASONS:
            raise InvalidInput("name", f"the list holds at most {MAX_LISTED_REASONS} reasons")
        reason = outputs_db.add_feedback_reason(conn, tag, description, position)
    log.info("feedback reason set", reason=tag, user_id=admin.id)
    return reason


def remove_reason(pool: ConnectionPool, admin: User, name: Any) -> None:
    """Take a reason off the list (admins only); outputs that have it keep it."""
    if not admin.is_admin:
        raise Forbidden("only admins change the reasons list")
    tag = reason_name(name)
    with pool.connection() as conn:
        if not outputs_db.remove_feedback_reason(conn, tag):
            raise NotFound(f"reason {tag!r} not found")
    log.info("feedback reason removed", reason=tag, user_id=admin.id)


MAX_LISTED_EVENTS = 1_000  # changes of one output read at once


def feedback_events(
    pool: ConnectionPool, output_id: int, user: User, limit: int = 200
) -> list[FeedbackEvent]:
    """The latest changes of an output's feedback (at most limit, 1 to 1,000), oldest first,
    with who made each and when (owner or admin; NotFound otherwise)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LISTED_EVENTS:
        raise InvalidInput("limit", f"must be a whole number from 1 to {MAX_LISTED_EVENTS:,}")
    with pool.connection() as conn:
        outputs.find_output(conn, output_id, user)
        return feedback_details.recent_feedback_events(conn, output_id, limit)
