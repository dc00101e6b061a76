"""The LLM judge endpoints: define, change and delete judges (admins), run one over a scope of
outputs as ordinary queued jobs (admins), read its verdicts and its calibration against people's
thumbs. Each parses its input and calls one use-case of `tasks.judges`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from api.deps import CurrentAdmin, CurrentUser, JobCreation, Pool
from api.schemas import MAX_ID, Body, ErrorMessage, Id, Text, Timestamp, ValidationErrors
from db.models import Queue
from tasks import judges
from tasks.judges import Judge, JudgeCalibration, JudgeRun, JudgeScope, Verdict
from tasks.llm import rendering

_ALWAYS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "Missing, unknown or revoked bearer token."},
    422: {"model": ValidationErrors, "description": "Invalid input: each field and why."},
    503: {"model": ErrorMessage, "description": "The database is unavailable."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "No such judge."},
}
_ADMINS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorMessage, "description": "Admins only."},
}

JudgeId = Annotated[int, Path(ge=1, le=MAX_ID, description="A judge's id.")]
MAX_PAGE = judges.MAX_PAGE - 1  # one more is read, to know whether a next page exists
Outcome = Literal["pass", "fail", "no verdict", "waiting"]

router = APIRouter(prefix="/api/v1", tags=["judges"])


class JudgeRequest(Body):
    name: Text = Field(max_length=judges.MAX_NAME_CHARS, description="Unique.")
    model: Text = Field(max_length=200, description="The judge's model (see GET /api/v1/models).")
    rubric: Text | None = Field(
        None,
        max_length=judges.MAX_RUBRIC_CHARS,
        description="A Jinja2 template seeing prompt, answer, corrected_answer and context; "
        "the default rubric when omitted.",
    )


class JudgeChange(Body):
    name: Text | None = Field(None, max_length=judges.MAX_NAME_CHARS)
    model: Text | None = Field(None, max_length=200)
    rubric: Text | None = Field(None, max_length=judges.MAX_RUBRIC_CHARS)


class ScopeBody(Body):
    """Completed outputs, narrowed by any of these (none: every completed output)."""

    user_id: Id | None = None
    model: Text | None = Field(None, max_length=200)
    template_name: Text | None = Field(None, max_length=200)
    template_version: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    template: Text | None = Field(None, max_length=rendering.MAX_TEMPLATE_BYTES)
    batch_id: Id | None = None
    created_after: Timestamp | None = None
    created_before: Timestamp | None = None
    rated_only: bool = Field(False, description="Only outputs with a person's thumb.")


class RunRequest(Body):
    scope: ScopeBody = Field(default_factory=ScopeBody)
    queue: Queue = Field("low", description="The queue of the judge's jobs.")
    again: bool = Field(False, description="Judge again the outputs this judge already judged.")


class VerdictPage(BaseModel):
    items: list[Verdict]
    next_before_id: int | None = Field(
        description="Pass it as before_id for the next page; null on the last one."
    )


class JudgeCounts(BaseModel):
    judge: Judge
    verdicts: dict[str, int] = Field(description="pass, fail, no verdict, waiting.")


@router.get("/judges", response_model=list[Judge], responses=_ALWAYS, summary="List judges")
def list_judges(user: CurrentUser, pool: Pool) -> list[Judge]:
    return judges.list_judges(pool, user)


@router.post(
    "/judges",
    status_code=201,
    response_model=Judge,
    responses={**_ALWAYS, **_ADMINS},
    summary="Define a judge (admins)",
)
def create_judge(body: JudgeRequest, admin: CurrentAdmin, pool: Pool) -> Judge:
    return judges.add_judge(pool, admin, name=body.name, model=body.model, rubric=body.rubric)


@router.get(
    "/judges/{judge_id}",
    response_model=JudgeCounts,
    responses={**_ALWAYS, **_NOT_FOUND},
    summary="One judge and its verdict counts",
)
def get_judge(judge_id: JudgeId, user: CurrentUser, pool: Pool) -> JudgeCounts:
    """The judge, and how many of its verdicts say pass, fail, no verdict and waiting (on your
    outputs; admins: on everyone's)."""
    judge = judges.get_judge(pool, judge_id, user)
    return JudgeCounts(judge=judge, verdicts=judges.verdict_counts(pool, judge_id, user))


@router.put(
    "/judges/{judge_id}",
    response_model=Judge,
    responses={**_ALWAYS, **_ADMINS, **_NOT_FOUND},
    summary="Change a judge (admins)",
)
def put_judge(judge_id: JudgeId, body: JudgeChange, admin: CurrentAdmin, pool: Pool) -> Judge:
    """Change its name, model or rubric (each omitted is kept). Verdicts already given stay."""
    return judges.edit_judge(
        pool, admin, judge_id, name=body.name, model=body.model, rubric=body.rubric
    )


@router.delete(
    "/judges/{judge_id}",
    status_code=204,
    response_class=Response,
    responses={**_ALWAYS, **_ADMINS, **_NOT_FOUND},
    summary="Delete a judge and its verdicts (admins)",
)
def delete_judge(judge_id: JudgeId, admin: CurrentAdmin, pool: Pool) -> Response:
    judges.delete_judge(pool, admin, judge_id)
    return Response(status_code=204)


@router.post(
    "/judges/{judge_id}/runs",
    status_code=202,
    response_model=JudgeRun,
    responses={
        **_ALWAYS,
        **_ADMINS,
        **_NOT_FOUND,
        409: {"model": ErrorMessage, "description": "A monthly budget would be exceeded."},
        429: {"model": ErrorMessage, "description": "Job creation rate limit reached."},
    },
    summary="Run a judge over a scope (admins)",
)
def run_judge(judge_id: JudgeId, body: RunRequest, jobs: JobCreation) -> JudgeRun:
    """Queue one judge job per completed output of the scope (the newest 5,000: `capped` says
    when there were more), as ordinary json jobs of yours in `queue`; outputs this judge already
    judged are skipped unless `again`. Rate limited and idempotent as any job creation."""

    def create(conn: psycopg.Connection) -> JudgeRun:
        scope = JudgeScope.model_validate(body.scope.model_dump())
        return judges.run_judge_on(
            conn, jobs.user, judge_id, scope, queue=body.queue, again=body.again
        )

    payload = {"judge_id": judge_id, **body.model_dump(mode="json")}
    return jobs.run(create, body=payload, answer_type=JudgeRun)


@router.get(
    "/judges/{judge_id}/verdicts",
    response_model=VerdictPage,
    responses={**_ALWAYS, **_NOT_FOUND},
    summary="A judge's verdicts, newest judged output first",
)
def list_verdicts(
    judge_id: JudgeId,
    user: CurrentUser,
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    outcome: Outcome | None = None,
) -> VerdictPage:
    """Its verdicts on your outputs (admins: everyone's), one page at a time: pass
    `next_before_id` back as `before_id` until it is null."""
    rows = judges.list_verdicts(
        pool, judge_id, user, limit=limit + 1, before_id=before_id, outcome=outcome
    )
    page = rows[:limit]
    more = len(rows) > limit
    return VerdictPage(items=page, next_before_id=page[-1].output_id if more else None)


@router.get(
    "/judges/{judge_id}/calibration",
    response_model=JudgeCalibration,
    responses={**_ALWAYS, **_NOT_FOUND},
    summary="A judge against people's thumbs",
)
def get_calibration(judge_id: JudgeId, user: CurrentUser, pool: Pool) -> JudgeCalibration:
    """On outputs with both a person's thumb (up: pass) and a pass or fail from the judge:
    their count, agreement, Cohen's kappa (null when undefined, with `kappa_note` saying why)
    and the confusion matrix, overall and per model (your outputs; admins: everyone's)."""
    return judges.calibration(pool, judge_id, user)
