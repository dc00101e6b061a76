"""Review queues over HTTP: make one from a scope of completed outputs, take its items one after
another (each held for you a few minutes), review or skip them, and read the progress and, with
several reviewers per item, their agreement. The rules live in `tasks.reviews`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field, StrictBool, StrictInt

from api.deps import CurrentUser, Pool
from api.schemas import MAX_ID, Body, ErrorMessage, Text, Timestamp, ValidationErrors
from db.models import FeedbackValue, Format
from tasks import feedback as feedback_rules
from tasks import reviews
from tasks.reviews import Created, Item, Status
from tasks.reviews import ReviewQueue as QueueRow

_ALWAYS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "Missing, unknown or revoked bearer token."},
    413: {"model": ErrorMessage, "description": "Body larger than 256 KiB."},
    422: {"model": ValidationErrors, "description": "Invalid input: each field and why."},
    503: {"model": ErrorMessage, "description": "The database is unavailable."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "No such review queue, or not yours."},
}

QueueId = Annotated[int, Path(ge=1, le=MAX_ID, description="A review queue's id.")]
OutputId = Annotated[int, Path(ge=1, le=MAX_ID, description="An output's id in the queue.")]

# an id in JSON is a number: "7" is refused, not read as 7
StrictId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]

router = APIRouter(prefix="/api/v1", tags=["reviews"])


class ReviewQueueRequest(Body):
    name: Text = Field(max_length=400, description="What the queue is for (1 to 100 characters).")
    model: Text | None = Field(None, max_length=400, description="Only this model's outputs.")
    template_version_id: StrictId | None = Field(
        None, description="Only the outputs of this library template version."
    )
    template: Text | None = Field(
        None,
        max_length=reviews.MAX_TEMPLATE_CHARS,
        description="Only the outputs of exactly this template text.",
    )
    batch_id: StrictId | None = Field(None, description="Only this batch's outputs.")
    since: Timestamp | None = Field(None, description="Only outputs created at or after this.")
    until: Timestamp | None = Field(None, description="Only outputs created before this.")
    only: Literal["unrated", "thumbs_down"] | None = Field(
        None, description="Only the outputs with no thumbs yet, or only the thumbs-down ones."
    )
    blind: StrictBool = Field(
        False, description="Hide each item's model (and cost) from reviewers."
    )
    reviewers_per_item: StrictInt = Field(
        1, ge=1, le=reviews.MAX_REVIEWERS, description="How many people review each item (1 to 5)."
    )


class ReviewQueueOut(BaseModel):
    id: int
    name: str
    owner: str | None
    scope: dict[str, Any]
    blind: bool
    reviewers_per_item: int
    created_at: datetime
    items: int = Field(description="Outputs in the queue, fixed when it was made.")
    reviewed: int = Field(description="Items with as many reviews as the queue asks for.")
    held: int = Field(description="Items some reviewer holds now.")

    @classmethod
    def of(cls, queue: QueueRow) -> ReviewQueueOut:
        return cls(owner=queue.owner_name, **queue.model_dump(exclude={"owner_name", "owner_id"}))


class ReviewQueueCreated(ReviewQueueOut):
    capped: bool = Field(
        description=f"The scope held more than {reviews.MAX_ITEMS:,} outputs: the newest "
        f"{reviews.MAX_ITEMS:,} were taken."
    )

    @classmethod
    def made(cls, created: Created) -> ReviewQueueCreated:
        return cls(capped=created.capped, **ReviewQueueOut.of(created.queue).model_dump())


class ProgressOut(BaseModel):
    items: int
    reviewed: int = Field(description="Items with as many reviews as the queue asks for.")
    reviews: int = Field(description="Reviews given by everyone (skips left out).")
    mine: int = Field(description="Your reviews.")
    skipped: int = Field(description="Items you skipped.")
    held: int = Field(description="Items held now.")
    summary: str = Field(examples=["12 of 80 reviewed"])


class AgreementOut(BaseModel):
    items: int = Field(description="Items with at least two thumbs (up or down).")
    unanimous: int = Field(description="Of those, items whose thumbs all agree.")
    unanimous_share: float | None
    pairs: int = Field(description="Pairs of thumbs on one item.")
    agreeing_pairs: int
    pairwise: float | None = Field(description="Share of the pairs that agree.")


class ReviewQueueStatus(ReviewQueueOut):
    progress: ProgressOut
    agreement: AgreementOut | None = Field(
        description="How reviewers agree; null unless the queue asks for several per item."
    )

    @classmethod
    def of_status(cls, status: Status) -> ReviewQueueStatus:
        p, a = status.progress, status.agreement
        return cls(
            **ReviewQueueOut.of(status.queue).model_dump(),
            progress=ProgressOut(**p.model_dump(), summary=p.summary),
            agreement=AgreementOut(
                **a.model_dump(), unanimous_share=a.unanimous_share, pairwise=a.pairwise
            )
            if a
            else None,
        )


class ReviewItemOut(BaseModel):
    queue_id: int
    output_id: int
    position: int = Field(description="Its place in the queue, from 1.")
    prompt: str | None
    system_prompt: str | None
    context: dict[str, Any]
    answer: Any = Field(description="The parsed answer, as its format reads it.")
    format: Format
    model: str | None = Field(description="null in a blind queue.")
    cost: Decimal | None = Field(description="null in a blind queue: a cost can tell a model.")
    reserved_until: datetime | None = Field(
        description="Until when the item is held for you (null: you do not hold it)."
    )
    my_feedback: FeedbackValue | None = None
    my_reasons: list[str] | None = None
    my_skipped: bool | None = None
    comment: str | None = None
    corrected_answer: str | None = None

    @classmethod
    def of(cls, item: Item) -> ReviewItemOut:
        return cls.model_validate(item.model_dump())


class ReviewRequest(Body):
    feedback: FeedbackValue | None = Field(None, description="Your thumbs; kept when omitted.")
    reasons: list[Text] | None = Field(
        None,
        max_length=feedback_rules.MAX_REASONS,
        description="Reason tags from the list (GET it from the dashboard or an admin); "
        "replace the output's; kept when omitted.",
    )
    comment: Text | None = Field(
        None, description=f'At most {feedback_rules.MAX_COMMENT_CHARS:,} characters; "" clears it.'
    )
    corrected_answer: Text | None = Field(
        None,
        description=f"What the answer should have been, at most "
        f'{feedback_rules.MAX_CORRECTED_CHARS:,} characters; "" clears it.',
    )
    skip: StrictBool = Field(
        False, description="Skip the item: it is not given to you again (give nothing else)."
    )


class ReviewMarkOut(BaseModel):
    queue_id: int
    output_id: int
    feedback: FeedbackValue
    reasons: list[str]
    skipped: bool
    reviewed_at: datetime


@router.post(
    "/review_queues",
    status_code=201,
    response_model=ReviewQueueCreated,
    responses=_ALWAYS,
    summary="Make a review queue",
)
def create_review_queue(
    body: ReviewQueueRequest, user: CurrentUser, pool: Pool
) -> ReviewQueueCreated:
    """The completed outputs in scope that you may see (yours; an admin's: anyone's) become the
    queue's items, oldest first, at most 2,000 (the newest; `capped` says so). A scope with no
    output is refused (422, field `scope`)."""
    scope = reviews.check_scope(
        model=body.model,
        template_version_id=body.template_version_id,
        template=body.template,
        batch_id=body.batch_id,
        since=body.since,
        until=body.until,
        only=body.only,
    )
    created = reviews.create_queue(
        pool,
        user,
        name=body.name,
        scope=scope,
        blind=body.blind,
        reviewers_per_item=body.reviewers_per_item,
    )
    return ReviewQueueCreated.made(created)


@router.get(
    "/review_queues",
    response_model=list[ReviewQueueOut],
    responses=_ALWAYS,
    summary="List review queues, newest first",
)
def list_review_queues(user: CurrentUser, pool: Pool) -> list[ReviewQueueOut]:
    """Your queues (admins: everyone's), at most 200."""
    return [ReviewQueueOut.of(q) for q in reviews.list_queues(pool, user)]


@router.get(
    "/review_queues/{queue_id}",
    response_model=ReviewQueueStatus,
    responses={**_ALWAYS, **_NOT_FOUND},
    summary="A review queue's progress and agreement",
)
def get_review_queue(queue_id: QueueId, user: CurrentUser, pool: Pool) -> ReviewQueueStatus:
    return ReviewQueueStatus.of_status(reviews.status(pool, queue_id, user))


@router.post(
    "/review_queues/{queue_id}/next",
    response_model=ReviewItemOut,
    responses={
        **_ALWAYS,
        **_NOT_FOUND,
        204: {"description": "Nothing is left for you to review in this queue."},
    },
    summary="The next item to review, held for you",
)
def next_review_item(queue_id: QueueId, user: CurrentUser, pool: Pool) -> Any:
    """The item you hold, if your hold is still live (asking again gives it again); else the
    next one nobody else holds, now held for you until `reserved_until`
    (LLMJOBS_REVIEW_HOLD_SECONDS, 300 by default). 204 when nothing is left for you."""
    item = reviews.next_item(pool, queue_id, user)
    if item is None:
        return Response(status_code=204)
    return ReviewItemOut.of(item)


@router.post(
    "/review_queues/{queue_id}/items/{output_id}",
    response_model=ReviewMarkOut,
    responses={
        **_ALWAYS,
        **_NOT_FOUND,
        409: {"model": ErrorMessage, "description": "The item already has all its reviews."},
    },
    summary="Review or skip an item",
)
def review_item(
    queue_id: QueueId, output_id: OutputId, body: ReviewRequest, user: CurrentUser, pool: Pool
) -> ReviewMarkOut:
    """Your feedback on the item's output (kept as a feedback event, like any feedback) and your
    mark in the queue; your hold on it is released. Reviewing again replaces your mark. An item
    you do not hold may be reviewed while it lacks reviews (409 once it has them all)."""
    mark = reviews.review(
        pool,
        queue_id,
        output_id,
        user,
        feedback=body.feedback,
        reasons=body.reasons,
        comment=body.comment,
        corrected_answer=body.corrected_answer,
        skip=body.skip,
    )
    return ReviewMarkOut.model_validate(mark.model_dump())
