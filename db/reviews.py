"""Review queues: their items fixed at creation, reviewers' reservations and marks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from db.models import FeedbackValue, Row
from db.queries import queries


class ReviewQueue(Row):
    id: int
    name: str
    owner_id: int
    owner_name: str | None = None
    # the filters it was made from, as given
    scope: dict[str, Any] = {}
    blind: bool = False
    reviewers_per_item: int = 1
    created_at: datetime
    items: int = 0
    # items with as many reviews as the queue asks for
    reviewed: int = 0
    # items some reviewer holds now
    held: int = 0


class Reservation(Row):
    output_id: int
    reserved_until: datetime


class ItemState(Row):
    position: int
    # the reviewer's live hold on the item, their mark, and the item's reviews (not skipped)
    reserved_until: datetime | None = None
    my_feedback: FeedbackValue | None = None
    my_reasons: list[str] | None = None
    my_skipped: bool | None = None
    reviews: int = 0


class Mark(Row):
    queue_id: int
    output_id: int
    user_id: int
    feedback: FeedbackValue
    reasons: list[str] = []
    skipped: bool = False
    reviewed_at: datetime


class Progress(Row):
    items: int
    reviewed: int
    reviews: int
    mine: int
    skipped: int
    held: int


class Agreement(Row):
    items: int
    unanimous: int
    pairs: int
    agreeing_pairs: int


def scope_outputs(
    conn: psycopg.Connection,
    *,
    user_id: int | None,
    model: str | None,
    template_version_id: int | None,
    template: str | None,
    batch_id: int | None,
    since: datetime | None,
    until: datetime | None,
    only: str | None,
    limit: int,
) -> list[int]:
    """Ids of the completed outputs in a scope, newest first, at most limit."""
    params = {
        "user_id": user_id,
        "model": model,
        "template_version_id": template_version_id,
        "template": template,
        "batch_id": batch_id,
        "since": since,
        "until": until,
        "only": only,
        "limit": limit,
    }
    return [r["id"] for r in conn.execute(queries["review_scope_outputs"], params)]


def insert_queue(
    conn: psycopg.Connection,
    *,
    name: str,
    owner_id: int,
    scope: dict[str, Any],
    blind: bool,
    reviewers_per_item: int,
) -> int:
    params = {
        "name": name,
        "owner_id": owner_id,
        "scope": Jsonb(scope),
        "blind": blind,
        "reviewers_per_item": reviewers_per_item,
    }
    return conn.execute(queries["insert_review_queue"], params).fetchone()["id"]


def insert_items(conn: psycopg.Connection, queue_id: int, output_ids: list[int]) -> None:
    """The queue's items, positioned from 1 in the order given."""
    conn.execute(queries["insert_review_items"], {"queue_id": queue_id, "ids": output_ids})


def get_queue(
    conn: psycopg.Connection, queue_id: int, *, viewer_id: int | None = None
) -> ReviewQueue | None:
    """One queue with its counts; with viewer_id, None unless that user owns it."""
    row = conn.execute(
        queries["get_review_queue"], {"id": queue_id, "viewer_id": viewer_id}
    ).fetchone()
    return ReviewQueue.model_validate(row) if row else None


def list_queues(conn: psycopg.Connection, *, owner_id: int | None, limit: int) -> list[ReviewQueue]:
    rows = conn.execute(queries["list_review_queues"], {"owner_id": owner_id, "limit": limit})
    return [ReviewQueue.model_validate(r) for r in rows]


def lock_queue(conn: psycopg.Connection, queue_id: int) -> None:
    """Until the transaction ends, no other pick or mark on this queue."""
    conn.execute(queries["lock_review_queue"], {"id": queue_id})


def next_item(
    conn: psycopg.Connection, queue_id: int, user_id: int, *, per_item: int, hold_seconds: int
) -> Reservation | None:
    """The reviewer's live reservation, else a new one on the next item; None when none is left."""
    params = {
        "queue_id": queue_id,
        "user_id": user_id,
        "per_item": per_item,
        "hold": hold_seconds,
    }
    row = conn.execute(queries["next_review_item"], params).fetchone()
    return Reservation.model_validate(row) if row else None


def item_state(
    conn: psycopg.Connection, queue_id: int, output_id: int, user_id: int
) -> ItemState | None:
    """Where an item stands for a reviewer; None when the output is not in the queue."""
    params = {"queue_id": queue_id, "output_id": output_id, "user_id": user_id}
    row = conn.execute(queries["review_item_state"], params).fetchone()
    return ItemState.model_validate(row) if row else None


def save_mark(
    conn: psycopg.Connection,
    queue_id: int,
    output_id: int,
    user_id: int,
    *,
    feedback: str | None,
    reasons: list[str] | None,
    skipped: bool,
) -> Mark:
    """The reviewer's mark (replacing theirs, if any; feedback or reasons None: kept from it),
    their hold on the item released."""
    params = {
        "queue_id": queue_id,
        "output_id": output_id,
        "user_id": user_id,
        "feedback": feedback,
        "reasons": reasons,
        "skipped": skipped,
    }
    return Mark.model_validate(conn.execute(queries["save_review_mark"], params).fetchone())


def progress(conn: psycopg.Connection, queue_id: int, user_id: int, *, per_item: int) -> Progress:
    params = {"queue_id": queue_id, "user_id": user_id, "per_item": per_item}
    return Progress.model_validate(conn.execute(queries["review_progress"], params).fetchone())


def agreement(conn: psycopg.Connection, queue_id: int) -> Agreement:
    row = conn.execute(queries["review_agreement"], {"queue_id": queue_id}).fetchone()
    return Agreement.model_validate(row)
