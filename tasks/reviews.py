"""Review queues: a scope of completed outputs, fixed when the queue is made, that reviewers go
through one after another. Each reviewer is given the next item nobody else holds and holds it
for LLMJOBS_REVIEW_HOLD_SECONDS; their review is ordinary feedback on the output (kept as an
event with who and when) plus a mark of their own on the item. A queue may ask for several
reviewers per item, and then shows how often they agree.

A queue is seen by its owner and by admins; anyone else is told it does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import psycopg
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from db import outputs as outputs_db
from db import reviews as reviews_db
from db.models import FeedbackValue, Format, User
from db.reviews import Mark, ReviewQueue
from tasks import feedback as feedback_use
from tasks.config import get_settings, model_name_problem
from tasks.errors import Conflict, InvalidInput, NotFound
from tasks.logs import get_logger

log = get_logger("llmjobs.reviews")

MAX_ITEMS = 2_000  # items one queue takes: the newest of its scope
MAX_NAME_CHARS = 100
MAX_TEMPLATE_CHARS = 100_000
MAX_REVIEWERS = 5
MAX_LISTED = 200  # queues a list shows, newest first
ONLY = ("unrated", "thumbs_down")
_MAX_ID = 2**63 - 1
HIDDEN_MODEL = "hidden while reviewing"


class Scope(BaseModel):
    """Which completed outputs a queue takes; every part left out takes all."""

    model: str | None = None
    template_version_id: int | None = None
    template: str | None = None
    batch_id: int | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    only: Literal["unrated", "thumbs_down"] | None = None


class Created(BaseModel):
    queue: ReviewQueue
    # whether the scope held more than MAX_ITEMS outputs (the newest were taken)
    capped: bool


class Item(BaseModel):
    """An item as a reviewer sees it. In a blind queue (or while the output's blind comparison is
    not judged) the model and cost are None: a cost can tell a model."""

    queue_id: int
    output_id: int
    position: int
    prompt: str | None
    system_prompt: str | None
    context: dict[str, Any]
    answer: Any
    raw_response: str | None
    format: Format
    model: str | None
    cost: Any = None
    reserved_until: datetime | None
    # the reviewer's own mark on it, if they already reviewed or skipped it
    my_feedback: FeedbackValue | None = None
    my_reasons: list[str] | None = None
    my_skipped: bool | None = None
    # the output's comment and corrected answer as they stand
    comment: str | None = None
    corrected_answer: str | None = None


class Agreement(BaseModel):
    """How reviewers agree, over the items with at least two thumbs (up or down)."""

    items: int
    unanimous: int
    pairs: int
    agreeing_pairs: int

    @property
    def unanimous_share(self) -> float | None:
        return self.unanimous / self.items if self.items else None

    @property
    def pairwise(self) -> float | None:
        return self.agreeing_pairs / self.pairs if self.pairs else None


class Progress(BaseModel):
    """A queue's progress, for one reviewer."""

    items: int
    reviewed: int  # items with as many reviews as the queue asks for
    reviews: int  # reviews given, by everyone (skips left out)
    mine: int  # this reviewer's reviews
    skipped: int  # this reviewer's skips
    held: int  # items held now

    @property
    def summary(self) -> str:
        return f"{self.reviewed:,} of {self.items:,} reviewed"


class Status(BaseModel):
    queue: ReviewQueue
    progress: Progress
    agreement: Agreement | None  # None unless the queue asks for several reviewers per item


def _id(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_ID:
        raise InvalidInput(field, "must be a positive whole number")
    return value


def _text(field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, "must be text")
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    if len(value) > limit:
        raise InvalidInput(field, f"must be at most {limit:,} characters (got {len(value):,})")
    return value


def _instant(field: str, value: Any, *, end: bool) -> datetime | None:
    """A bound of the date range: an aware date-time, or a date (from its start, or to its end)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(field, "must be a date-time with its time zone")
        return value
    if isinstance(value, date):
        start = datetime.combine(value, time(0), tzinfo=UTC)
        if end and value == date.max:
            return None  # to the end of time
        return start + timedelta(days=1) if end else start
    raise InvalidInput(field, "must be a date or a date-time")


def check_scope(
    *,
    model: Any = None,
    template_version_id: Any = None,
    template: Any = None,
    batch_id: Any = None,
    since: Any = None,
    until: Any = None,
    only: Any = None,
) -> Scope:
    """A scope, each part checked (InvalidInput names the part). A date bound counts whole days
    in UTC: `since` from its start, `until` to its end."""
    if model is not None and model != "":
        _text("model", model, 200)
        if problem := model_name_problem(model):
            raise InvalidInput("model", problem)
    else:
        model = None
    if template is not None:
        _text("template", template, MAX_TEMPLATE_CHARS)
        template = template or None
    if only is not None and only != "" and only not in ONLY:
        raise InvalidInput("only", f"must be one of {', '.join(ONLY)} (or nothing)")
    start = _instant("since", since, end=False)
    stop = _instant("until", until, end=True)
    if start is not None and stop is not None and stop <= start:
        raise InvalidInput("until", "must be after since")
    return Scope(
        model=model,
        template_version_id=_id("template_version_id", template_version_id),
        template=template,
        batch_id=_id("batch_id", batch_id),
        since=start,
        until=stop,
        only=only or None,
    )


def create_queue(
    pool: ConnectionPool,
    user: User,
    *,
    name: Any,
    scope: Scope,
    blind: Any = False,
    reviewers_per_item: Any = 1,
) -> Created:
    """A queue of the completed outputs in scope that user may see (their own; an admin's:
    anyone's), the newest MAX_ITEMS of them, positioned oldest first.

    Raises InvalidInput naming the field (name, blind, reviewers_per_item; scope when no
    output is in it); nothing is written then.
    """
    name = " ".join(_text("name", name, MAX_NAME_CHARS * 4).split())
    if not name:
        raise InvalidInput("name", "is required")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput("name", f"must be at most {MAX_NAME_CHARS} characters")
    if not isinstance(blind, bool):
        raise InvalidInput("blind", "must be true or false")
    if (
        isinstance(reviewers_per_item, bool)
        or not isinstance(reviewers_per_item, int)
        or not 1 <= reviewers_per_item <= MAX_REVIEWERS
    ):
        raise InvalidInput(
            "reviewers_per_item", f"must be a whole number from 1 to {MAX_REVIEWERS}"
        )
    with pool.connection() as conn, conn.transaction():
        found = reviews_db.scope_outputs(
            conn,
            user_id=None if user.is_admin else user.id,
            limit=MAX_ITEMS + 1,
            **scope.model_dump(),
        )
        if not found:
            raise InvalidInput(
                "scope", "no completed output you can see is in this scope: widen it and try again"
            )
        capped = len(found) > MAX_ITEMS
        ids = list(reversed(found[:MAX_ITEMS]))  # oldest first
        queue_id = reviews_db.insert_queue(
            conn,
            name=name,
            owner_id=user.id,
            scope=scope.model_dump(mode="json", exclude_none=True),
            blind=blind,
            reviewers_per_item=reviewers_per_item,
        )
        reviews_db.insert_items(conn, queue_id, ids)
        queue = reviews_db.get_queue(conn, queue_id)
    assert queue is not None
    log.info(
        "review queue created",
        queue_id=queue_id,
        user_id=user.id,
        items=len(ids),
        capped=capped,
        blind=blind,
        reviewers_per_item=reviewers_per_item,
    )
    return Created(queue=shown(queue), capped=capped)


def shown(queue: ReviewQueue) -> ReviewQueue:
    """The queue as front ends show it: a blind queue's scope names no model."""
    if not queue.blind or "model" not in queue.scope:
        return queue
    return queue.model_copy(update={"scope": {**queue.scope, "model": HIDDEN_MODEL}})


def _visible(conn: psycopg.Connection, queue_id: Any, user: User) -> ReviewQueue:
    if isinstance(queue_id, bool) or not isinstance(queue_id, int) or not 0 < queue_id <= _MAX_ID:
        raise NotFound(f"review queue {queue_id} not found")
    queue = reviews_db.get_queue(conn, queue_id, viewer_id=None if user.is_admin else user.id)
    if queue is None:
        raise NotFound(f"review queue {queue_id} not found")
    return queue


def get_queue(pool: ConnectionPool, queue_id: Any, user: User) -> ReviewQueue:
    """The queue if user owns it or is an admin; NotFound otherwise."""
    with pool.connection() as conn:
        return shown(_visible(conn, queue_id, user))


def list_queues(pool: ConnectionPool, user: User) -> list[ReviewQueue]:
    """The queues user may see (their own; an admin's: everyone's), newest first, at most
    MAX_LISTED."""
    with pool.connection() as conn:
        found = reviews_db.list_queues(
            conn, owner_id=None if user.is_admin else user.id, limit=MAX_LISTED
        )
    return [shown(q) for q in found]


def hold_seconds() -> int:
    """How long a reviewer holds an item (LLMJOBS_REVIEW_HOLD_SECONDS)."""
    return get_settings().review_hold_seconds


def _item(
    conn: psycopg.Connection,
    queue: ReviewQueue,
    output_id: int,
    user: User,
    reserved_until: datetime | None,
) -> Item:
    output = outputs_db.get_output(conn, output_id, viewer_id=None if user.is_admin else user.id)
    state = reviews_db.item_state(conn, queue.id, output_id, user.id)
    if output is None or state is None:
        raise NotFound(f"output {output_id} is not in review queue {queue.id}")
    hide = queue.blind or output.blind_pending
    return Item(
        queue_id=queue.id,
        output_id=output.id,
        position=state.position,
        prompt=output.prompt,
        system_prompt=output.system_prompt,
        context=output.context,
        answer=output.parsed_output,
        raw_response=output.raw_response,
        format=output.format,
        model=None if hide else output.model,
        cost=None if hide else output.cost,
        reserved_until=reserved_until or state.reserved_until,
        my_feedback=state.my_feedback,
        my_reasons=state.my_reasons,
        my_skipped=state.my_skipped,
        comment=output.feedback_comment,
        corrected_answer=output.corrected_answer,
    )


def next_item(pool: ConnectionPool, queue_id: Any, user: User) -> Item | None:
    """The item user reviews now: the one they hold, if their hold is live (a reload shows it
    again); else the first one, by position, they have not marked and that fewer reviewers than
    the queue asks for have reviewed or hold, now held by them for hold_seconds(). None when
    nothing is left for them. Two reviewers asking at once are never given the same item beyond
    what reviewers_per_item allows."""
    hold = hold_seconds()
    with pool.connection() as conn:
        with conn.transaction():
            queue = _visible(conn, queue_id, user)
            # one pick at a time per queue: each sees the holds of the picks before it
            reviews_db.lock_queue(conn, queue.id)
            reservation = reviews_db.next_item(
                conn, queue.id, user.id, per_item=queue.reviewers_per_item, hold_seconds=hold
            )
        if reservation is None:
            return None
        return _item(conn, queue, reservation.output_id, user, reservation.reserved_until)


def get_item(pool: ConnectionPool, queue_id: Any, output_id: Any, user: User) -> Item:
    """One item of a queue as the reviewer sees it (NotFound when the queue or output is not
    theirs to see, or the output is not in the queue)."""
    with pool.connection() as conn:
        queue = _visible(conn, queue_id, user)
        if isinstance(output_id, bool) or not isinstance(output_id, int):
            raise NotFound(f"output {output_id} is not in review queue {queue.id}")
        return _item(conn, queue, output_id, user, None)


def review(
    pool: ConnectionPool,
    queue_id: Any,
    output_id: Any,
    user: User,
    *,
    feedback: Any = None,
    reasons: Sequence[str] | None = None,
    comment: Any = None,
    corrected_answer: Any = None,
    skip: Any = False,
) -> Mark:
    """Review an item: the feedback given is set on the output (tasks.feedback.set_feedback:
    kept as an event; parts left out or None are kept, "" clears a comment or corrected answer)
    and recorded as this reviewer's mark (their thumbs and reasons; a second review replaces
    it), and their hold on the item is released. With skip, nothing is said of the output: the
    item is not given to this reviewer again and does not count as reviewed.

    An item the reviewer does not hold may be reviewed unless it already has all the reviews
    the queue asks for. Raises NotFound (queue or output not theirs to see, or not in the queue),
    InvalidInput naming the field, Conflict (the item is fully reviewed).
    """
    if not isinstance(skip, bool):
        raise InvalidInput("skip", "must be true or false")
    given = {
        "feedback": feedback,
        "reasons": reasons,
        "comment": comment,
        "corrected_answer": corrected_answer,
    }
    if skip and any(v is not None for v in given.values()):
        raise InvalidInput("skip", "a skipped item takes no feedback: skip it or review it")
    with pool.connection() as conn:
        queue = _visible(conn, queue_id, user)
        if isinstance(output_id, bool) or not isinstance(output_id, int) or output_id < 1:
            raise NotFound(f"output {output_id} is not in review queue {queue.id}")
        if (
            outputs_db.get_output(conn, output_id, viewer_id=None if user.is_admin else user.id)
            is None
            or (state := reviews_db.item_state(conn, queue.id, output_id, user.id)) is None
        ):
            raise NotFound(f"output {output_id} is not in review queue {queue.id}")
    if skip:
        with pool.connection() as conn:
            mark = reviews_db.save_mark(
                conn, queue.id, output_id, user.id, feedback="none", reasons=[], skipped=True
            )
        log.info("review skipped", queue_id=queue.id, output_id=output_id, user_id=user.id)
        return mark
    already = state.my_feedback is not None and not state.my_skipped
    if state.reserved_until is None and not already and state.reviews >= queue.reviewers_per_item:
        raise Conflict(
            f"output {output_id} already has the {queue.reviewers_per_item} review"
            f"{'s' if queue.reviewers_per_item > 1 else ''} this queue asks for"
        )
    if all(v is None for v in given.values()):
        raise InvalidInput(
            "feedback", "give feedback, reasons, a comment or a corrected answer (or skip)"
        )
    # the feedback, the mark and the released hold: one transaction, all or nothing
    with pool.connection() as conn, conn.transaction():
        event, model, job_id = feedback_use.set_feedback_on(
            conn,
            output_id,
            user,
            feedback,
            reasons=reasons,
            comment=feedback_use.KEEP if comment is None else comment,
            corrected_answer=feedback_use.KEEP if corrected_answer is None else corrected_answer,
        )
        mark = reviews_db.save_mark(
            conn,
            queue.id,
            output_id,
            user.id,
            # what this review said; what it left out stays as the reviewer's last review said
            feedback=feedback,
            # as set_feedback kept them: from the list, each once, in the list's order
            reasons=event.reasons if reasons is not None else None,
            skipped=False,
        )
    feedback_use.logged(event, user, model, job_id)
    log.info(
        "reviewed",
        queue_id=queue.id,
        output_id=output_id,
        user_id=user.id,
        feedback=mark.feedback,
        reasons=mark.reasons,
    )
    return mark


def status(pool: ConnectionPool, queue_id: Any, user: User) -> Status:
    """A queue with its progress for user and, when it asks for several reviewers per item,
    how they agree."""
    with pool.connection() as conn:
        queue = _visible(conn, queue_id, user)
        progress = reviews_db.progress(conn, queue.id, user.id, per_item=queue.reviewers_per_item)
        agreement = reviews_db.agreement(conn, queue.id) if queue.reviewers_per_item > 1 else None
    return Status(
        queue=shown(queue),
        progress=Progress.model_validate(progress.model_dump()),
        agreement=Agreement.model_validate(agreement.model_dump()) if agreement else None,
    )
