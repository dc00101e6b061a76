"""The endpoints. Each parses its input, calls one use-case of `tasks` and shapes the answer;
the rules themselves (validation, who sees what, limits) live in `tasks`."""

from __future__ import annotations

import base64
import binascii
import itertools
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse

from api import health
from api.body_limit import BATCH_BODY_BYTES, size_text
from api.deps import REPLAYED_HEADER, CurrentAdmin, CurrentUser, JobCreation, Pool
from api.schemas import (
    MAX_ID,
    BatchCancelled,
    BatchOut,
    BatchRequest,
    BatchRetried,
    ComparisonAnswer,
    ComparisonOut,
    ComparisonRequest,
    ErrorMessage,
    ExportFilters,
    FeedbackChange,
    FeedbackRequest,
    Health,
    JobRequest,
    LeaderboardOut,
    LimitRequest,
    ModelInfo,
    Output,
    OutputFilters,
    OutputPage,
    PickRequest,
    ReasonOut,
    ReasonRequest,
    RegenerateRequest,
    ValidationErrors,
)
from db.models import FeedbackReason
from tasks import batches, comparisons, exports, feedback, limits, outputs
from tasks.errors import InvalidInput, InvalidRows, NotFound
from tasks.llm import catalog
from tasks.outputs import Submission

_ALWAYS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorMessage,
        "description": "Missing, unknown or revoked bearer token.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    },
    503: {"model": ErrorMessage, "description": "The database is unavailable."},
}
_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationErrors, "description": "Invalid input: each field and why."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "No such output, or not yours."},
}
_CREATES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorMessage, "description": "Body larger than 256 KiB."},
    429: {
        "model": ErrorMessage,
        "description": "Job creation rate limit reached.",
        "headers": {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
        },
    },
    409: {
        "model": ErrorMessage,
        "description": "A monthly budget would be exceeded, or the same Idempotency-Key is "
        "still in use.",
    },
    202: {
        "headers": {
            REPLAYED_HEADER: {
                "schema": {"type": "string", "enum": ["true"]},
                "description": "Present when this is the stored answer to an earlier request.",
            }
        }
    },
}
_ACCEPTED_DOC = (
    "Queued. With an Idempotency-Key already used by this user in the last 24 h for the same "
    f"request, the first answer again (header {REPLAYED_HEADER}: true) and nothing is queued."
)

OutputId = Annotated[int, Path(ge=1, le=MAX_ID, description="An output's id.")]

router = APIRouter(prefix="/api/v1")
health_router = APIRouter()


@router.post(
    "/llm_jobs",
    status_code=202,
    response_model=Submission,
    responses={**_ALWAYS, **_INVALID, **_CREATES},
    summary="Queue an LLM job",
    response_description=_ACCEPTED_DOC,
    tags=["jobs"],
)
def create_llm_job(body: JobRequest, jobs: JobCreation) -> Submission:
    """Render the template with the context, queue the call to the model, answer at once.

    Poll `GET /api/v1/llm_outputs/{output_id}` until its status is completed or failed.
    """

    def create(conn: psycopg.Connection) -> Submission:
        return outputs.submit_on(
            conn,
            user=jobs.user,
            template=body.template,
            model=body.model,
            context=body.context,
            format=body.format,
            queue=body.queue,
            agent=body.agent_id,
            template_name=body.template_name,
            template_version=body.template_version,
            cache=body.cache,
            json_schema=body.json_schema,
        )

    return jobs.run(create, body=body.model_dump(mode="json"))


@router.get(
    "/llm_outputs",
    response_model=OutputPage,
    responses={**_ALWAYS, **_INVALID},
    summary="List outputs, newest first",
    tags=["outputs"],
)
def list_llm_outputs(
    filters: Annotated[OutputFilters, Query()], user: CurrentUser, pool: Pool
) -> OutputPage:
    """Your outputs (admins: everyone's, or one user's with user_id), filtered, one page at a
    time: pass `next_cursor` back as `cursor` until it is null."""
    wanted = filters.model_dump(exclude={"limit", "cursor"})
    rows = outputs.list_outputs(
        pool, user, **wanted, before_id=_decode_cursor(filters.cursor), limit=filters.limit + 1
    )
    page = rows[: filters.limit]
    more = len(rows) > filters.limit
    return OutputPage(
        items=[Output.of(row) for row in page],
        next_cursor=_encode_cursor(page[-1].id) if more else None,
    )


@router.get(
    "/llm_outputs/{output_id}",
    response_model=Output,
    responses={**_ALWAYS, **_INVALID, **_NOT_FOUND},
    summary="One output",
    tags=["outputs"],
)
def get_llm_output(output_id: OutputId, user: CurrentUser, pool: Pool) -> Output:
    return Output.of(outputs.get_output(pool, output_id, user))


@router.post(
    "/llm_outputs/{output_id}/feedback",
    response_model=FeedbackChange,
    responses={
        **_ALWAYS,
        **_INVALID,
        **_NOT_FOUND,
        409: {"model": ErrorMessage, "description": "The output is not completed."},
        413: _CREATES[413],
    },
    summary="Judge a completed output",
    tags=["outputs"],
)
def set_llm_output_feedback(
    output_id: OutputId, body: FeedbackRequest, user: CurrentUser, pool: Pool
) -> FeedbackChange:
    """Change any of the thumbs, the reasons, the comment and the corrected answer (at least
    one); the parts left out are kept. Answers the change: the feedback as it left it, which
    parts it changed, who and when. Each change is kept (`.../feedback_events`)."""
    given = body.model_fields_set
    texts = {part: getattr(body, part) for part in ("comment", "corrected_answer") if part in given}
    event = feedback.set_feedback(
        pool, output_id, user, body.feedback, reasons=body.reasons, **texts
    )
    return FeedbackChange.model_validate({**event.model_dump(), "user_name": user.name})


@router.get(
    "/llm_outputs/{output_id}/feedback_events",
    response_model=list[FeedbackChange],
    responses={**_ALWAYS, **_INVALID, **_NOT_FOUND},
    summary="An output's feedback changes, oldest first",
    tags=["outputs"],
)
def list_llm_output_feedback_events(
    output_id: OutputId,
    user: CurrentUser,
    pool: Pool,
    limit: Annotated[
        int, Query(ge=1, le=feedback.MAX_LISTED_EVENTS, description="The latest this many.")
    ] = 200,
) -> list[FeedbackChange]:
    """Who changed the feedback, when, what it changed and what it left: the latest `limit`
    changes, oldest first."""
    return [
        FeedbackChange.model_validate(event.model_dump())
        for event in feedback.feedback_events(pool, output_id, user, limit)
    ]


@router.post(
    "/llm_outputs/{output_id}/re_run",
    status_code=202,
    response_model=Submission,
    responses={**_ALWAYS, **_INVALID, **_NOT_FOUND, **_CREATES},
    summary="Run an output again with identical parameters",
    response_description=_ACCEPTED_DOC,
    tags=["jobs"],
)
def re_run_llm_output(output_id: OutputId, jobs: JobCreation) -> Submission:
    return jobs.run(lambda conn: outputs.re_run_on(conn, output_id, jobs.user), body=None)


@router.post(
    "/llm_outputs/{output_id}/regenerate",
    status_code=202,
    response_model=Submission,
    responses={**_ALWAYS, **_INVALID, **_NOT_FOUND, **_CREATES},
    summary="Run an output again with another context, model or format",
    response_description=_ACCEPTED_DOC,
    tags=["jobs"],
)
def regenerate_llm_output(
    output_id: OutputId, jobs: JobCreation, body: RegenerateRequest | None = None
) -> Submission:
    changes = body or RegenerateRequest()

    def create(conn: psycopg.Connection) -> Submission:
        return outputs.regenerate_on(
            conn,
            output_id,
            jobs.user,
            new_context=changes.new_context,
            new_model=changes.new_model,
            new_format=changes.new_format,
        )

    return jobs.run(create, body=changes.model_dump(mode="json"))


@router.get(
    "/models",
    response_model=list[ModelInfo],
    responses=_ALWAYS,
    summary="Models usable now",
    tags=["models"],
)
def list_models(user: CurrentUser, pool: Pool) -> list[ModelInfo]:
    return [
        ModelInfo(name=m.name, provider=m.provider, offline=m.offline)
        for m in catalog.usable_models(pool)
    ]


ComparisonId = Annotated[int, Path(ge=1, le=MAX_ID, description="A comparison's id.")]


def _comparison_out(view: comparisons.ComparisonView) -> ComparisonOut:
    return ComparisonOut(
        comparison_id=view.comparison_id,
        blind=view.blind,
        picked=view.picked,
        tie=view.tie,
        json_schema=view.json_schema,
        winner_output_id=view.winner_output_id,
        answers=[
            ComparisonAnswer(
                label=view.labels[o.id],
                output_id=o.id,
                model=view.models[o.id],
                status=o.status,
                parsed_output=o.parsed_output,
                error_message=o.error_message,
            )
            for o in view.outputs
        ],
    )


@router.post(
    "/comparisons",
    status_code=202,
    response_model=comparisons.ComparisonSubmission,
    responses={**_ALWAYS, **_INVALID, **_CREATES},
    summary="Queue one prompt to several models",
    response_description=_ACCEPTED_DOC,
    tags=["comparisons"],
)
def create_comparison(
    body: ComparisonRequest, jobs: JobCreation
) -> comparisons.ComparisonSubmission:
    """One job per model for the same prompt, in one transaction. Read the answers side by side
    with `GET /api/v1/comparisons/{id}` and record the better one with `.../pick`."""

    def create(conn: psycopg.Connection) -> comparisons.ComparisonSubmission:
        return comparisons.submit_comparison_on(
            conn,
            user=jobs.user,
            template=body.template,
            template_name=body.template_name,
            template_version=body.template_version,
            context=body.context,
            models=body.models,
            format=body.format,
            queue=body.queue,
            blind=body.blind,
            json_schema=body.json_schema,
        )

    return jobs.run(
        create, body=body.model_dump(mode="json"), answer_type=comparisons.ComparisonSubmission
    )


@router.get(
    "/comparisons/{comparison_id}",
    response_model=ComparisonOut,
    responses={**_ALWAYS, **_INVALID, **_NOT_FOUND},
    summary="A comparison's answers side by side",
    tags=["comparisons"],
)
def get_comparison(comparison_id: ComparisonId, user: CurrentUser, pool: Pool) -> ComparisonOut:
    """Blind comparisons hide the model names until a pick is recorded."""
    return _comparison_out(comparisons.get_comparison(pool, comparison_id, user))


@router.post(
    "/comparisons/{comparison_id}/pick",
    response_model=ComparisonOut,
    responses={
        **_ALWAYS,
        **_INVALID,
        **_NOT_FOUND,
        409: {
            "model": ErrorMessage,
            "description": "Some answer is not finished, or the chosen one failed.",
        },
    },
    summary="Record the better answer, or a tie",
    tags=["comparisons"],
)
def pick_comparison(
    comparison_id: ComparisonId, body: PickRequest, user: CurrentUser, pool: Pool
) -> ComparisonOut:
    """Stored as pairwise preferences (the winner over each other answer, or all tied); a new
    pick replaces the previous one."""
    return _comparison_out(comparisons.pick(pool, comparison_id, user, body.winner_output_id))


@router.get(
    "/leaderboard",
    response_model=LeaderboardOut,
    responses={**_ALWAYS, **_INVALID},
    summary="Models ranked by evidence",
    tags=["comparisons"],
)
def get_leaderboard(
    user: CurrentUser,
    pool: Pool,
    template_name: Annotated[str | None, Query(max_length=100)] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    cost_ceiling: Annotated[float | None, Query(ge=0, le=1e9)] = None,
    judge_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    rank_by: Annotated[Literal["human", "judge", "both"], Query()] = "human",
) -> LeaderboardOut:
    """Per model over your outputs (admins: everyone's): thumbs-up rate with its Wilson 95 %
    interval, pairwise win rate, judgements, median latency, cost per output and per thumbs-up;
    with `judge_id`, that judge's pass rate with its interval; ranked by the lower bound of
    `rank_by` (human, judge, or both: their mean); and the suggested model within the cost
    ceiling per output."""
    if template_name is not None and "\x00" in template_name:
        raise InvalidInput("template_name", "must be text without NUL characters")
    entries = comparisons.leaderboard(
        pool,
        user,
        template_name=template_name,
        version=version,
        judge_id=judge_id,
        rank_by=rank_by,
    )
    best = comparisons.suggest(entries, cost_ceiling)
    return LeaderboardOut(
        entries=[e.model_dump() for e in entries], suggested=best.model if best else None
    )


BatchId = Annotated[int, Path(ge=1, le=MAX_ID, description="A batch's id.")]
_BATCH_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "No such batch, or not yours."},
}
_NDJSON = "application/x-ndjson"
_RESULT_TYPES = {"csv": "text/csv", "jsonl": _NDJSON}


def _text_answer(description: str, *media_types: str) -> dict[int | str, dict[str, Any]]:
    content = {media: {"schema": {"type": "string"}} for media in media_types}
    return {
        200: {
            "description": description,
            "content": content,
            "headers": {
                "Content-Disposition": {
                    "schema": {"type": "string"},
                    "description": 'attachment; filename="..."',
                }
            },
        }
    }


def _batch_rows(body: BatchRequest) -> batches.ParsedFile:
    """The rows of the one source given (rows, csv or jsonl), with their columns."""
    given = [source for source in ("rows", "csv", "jsonl") if getattr(body, source) is not None]
    if len(given) != 1:
        raise InvalidInput("rows", "give exactly one of rows, csv, jsonl")
    if body.rows is not None:
        columns = dict.fromkeys(key for row in body.rows if isinstance(row, dict) for key in row)
        return batches.ParsedFile(columns=list(columns), rows=body.rows)
    [source] = given
    try:
        return batches.parse_file(getattr(body, source).encode(), f"rows.{source}")
    except InvalidRows:
        raise
    except InvalidInput as exc:  # about "the file": here, the csv or jsonl field
        raise InvalidInput(source, exc.message) from exc


@router.post(
    "/batches",
    status_code=202,
    response_model=BatchOut,
    responses={
        **_ALWAYS,
        **_INVALID,
        **_CREATES,
        413: {
            "model": ErrorMessage,
            "description": f"Body larger than {size_text(BATCH_BODY_BYTES)}.",
        },
    },
    summary="Queue one template over many rows",
    response_description=_ACCEPTED_DOC,
    tags=["batches"],
)
def create_batch(body: BatchRequest, jobs: JobCreation) -> BatchOut:
    """One job per row (given as `rows`, `csv` or `jsonl`), all queued in one transaction. A bad
    row refuses the whole batch with one 422 entry per bad row (field `rows[<n>].<field>`, rows
    numbered from 1) for the first 20, then one saying how many more, unless `skip_invalid`.
    Bodies may be up to 20 MiB and 100,000 rows here. Follow the progress with
    `GET /api/v1/batches/{id}`."""
    parsed = _batch_rows(body)

    def create(conn: psycopg.Connection) -> BatchOut:
        batch = batches.submit_batch_on(
            conn,
            user=jobs.user,
            template=body.template,
            model=body.model,
            rows=parsed.rows,
            columns=parsed.columns,
            format=body.format,
            queue=body.queue,
            name=body.name,
            skip_invalid=body.skip_invalid,
            cache=body.cache,
            json_schema=body.json_schema,
        )
        return BatchOut.of(batch)

    return jobs.run(create, body=body.model_dump(mode="json"), answer_type=BatchOut)


@router.get(
    "/batches",
    response_model=list[BatchOut],
    responses={**_ALWAYS, **_INVALID},
    summary="List batches, newest first",
    tags=["batches"],
)
def list_batches(
    user: CurrentUser,
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=200, description="At most this many.")] = 50,
) -> list[BatchOut]:
    """Your batches (admins: everyone's) with their progress."""
    return [BatchOut.of(b) for b in batches.list_batches(pool, user, limit)]


@router.get(
    "/batches/{batch_id}",
    response_model=BatchOut,
    responses={**_ALWAYS, **_INVALID, **_BATCH_NOT_FOUND},
    summary="A batch and its progress",
    tags=["batches"],
)
def get_batch(batch_id: BatchId, user: CurrentUser, pool: Pool) -> BatchOut:
    return BatchOut.of(batches.get_batch(pool, batch_id, user))


@router.post(
    "/batches/{batch_id}/cancel",
    response_model=BatchCancelled,
    responses={**_ALWAYS, **_INVALID, **_BATCH_NOT_FOUND, 413: _CREATES[413]},
    summary="Cancel a batch's rows that have not started",
    tags=["batches"],
)
def cancel_batch(batch_id: BatchId, user: CurrentUser, pool: Pool) -> BatchCancelled:
    """Rows not yet started fail with "cancelled by <user>"; rows already running finish."""
    return BatchCancelled(cancelled=len(batches.cancel_batch(pool, batch_id, user)))


@router.post(
    "/batches/{batch_id}/retry_failed",
    status_code=202,
    response_model=BatchRetried,
    responses={
        **_ALWAYS,
        **_INVALID,
        **_BATCH_NOT_FOUND,
        **_CREATES,
        409: {
            "model": ErrorMessage,
            "description": "No row failed, or the same Idempotency-Key is still in use.",
        },
    },
    summary="Queue a batch's failed rows again",
    response_description=_ACCEPTED_DOC,
    tags=["batches"],
)
def retry_failed_batch_rows(batch_id: BatchId, jobs: JobCreation) -> BatchRetried:
    """The failed rows (cancelled ones included) run again as the same outputs, with a fresh
    count of attempts."""

    def create(conn: psycopg.Connection) -> BatchRetried:
        return BatchRetried(queued=len(batches.retry_failed_on(conn, batch_id, jobs.user)))

    return jobs.run(create, body=None, answer_type=BatchRetried)


@router.get(
    "/batches/{batch_id}/results",
    response_class=Response,
    responses={
        **_text_answer("The rows in file order, as CSV or JSON Lines.", *_RESULT_TYPES.values()),
        **_ALWAYS,
        **_INVALID,
        **_BATCH_NOT_FOUND,
    },
    summary="A batch's results as a file",
    tags=["batches"],
)
def get_batch_results(
    batch_id: BatchId,
    user: CurrentUser,
    pool: Pool,
    format: Annotated[
        Literal["csv", "jsonl"], Query(description="csv (text/csv) or jsonl (JSON Lines).")
    ] = "csv",
) -> Response:
    """Per row: the input columns, then output, status, feedback, error, cost, cached and
    output_id."""
    text = batches.results(pool, batch_id, user, format)
    disposition = f'attachment; filename="batch-{batch_id}.{format}"'
    return Response(
        text, media_type=_RESULT_TYPES[format], headers={"Content-Disposition": disposition}
    )


@router.get(
    "/exports",
    response_class=StreamingResponse,
    responses={
        **_text_answer("One JSON object per line, oldest output first.", _NDJSON),
        **_ALWAYS,
        **_INVALID,
    },
    summary="Completed outputs as a JSON Lines dataset",
    tags=["exports"],
)
def export_outputs(
    filters: Annotated[ExportFilters, Query()], user: CurrentUser, pool: Pool
) -> StreamingResponse:
    """Completed outputs (yours; admins: everyone's or user_id's), streamed: prompt, output,
    model, format, feedback, template name and version, context, and chat `messages` ready for
    fine-tuning. kind golden keeps thumbs-up answers and corrected ones (the correction as the
    answer, `corrected: true`), eval thumbs-down ones."""
    lines = exports.export_jsonl(pool, user, **filters.model_dump())
    # The first page is read now, so that an unavailable database is a 503, not a cut stream.
    first = next(lines, None)
    body = lines if first is None else itertools.chain([first], lines)
    disposition = f'attachment; filename="{filters.kind}.jsonl"'
    return StreamingResponse(body, media_type=_NDJSON, headers={"Content-Disposition": disposition})


_ADMINS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorMessage, "description": "Admins only."},
}

ReasonName = Annotated[
    str, Path(max_length=100, description="A reason's name (a-z, 0-9, space, - and _).")
]


def _reason_out(reason: FeedbackReason) -> ReasonOut:
    return ReasonOut(name=reason.name, description=reason.description, position=reason.position)


@router.get(
    "/feedback_reasons",
    response_model=list[ReasonOut],
    responses=_ALWAYS,
    summary="The reasons feedback may give",
    tags=["feedback"],
)
def list_feedback_reasons(user: CurrentUser, pool: Pool) -> list[ReasonOut]:
    """In the order admins set: the tags `reasons` of `.../feedback` takes."""
    return [_reason_out(r) for r in feedback.list_reasons(pool)]


@router.put(
    "/feedback_reasons/{name}",
    response_model=ReasonOut,
    responses={**_ALWAYS, **_INVALID, **_ADMINS, 413: _CREATES[413]},
    summary="Add a reason, or change its description or place (admins)",
    tags=["feedback"],
)
def put_feedback_reason(
    name: ReasonName, admin: CurrentAdmin, pool: Pool, body: ReasonRequest | None = None
) -> ReasonOut:
    """The name is kept in lower case with single spaces. The list holds at most 50 reasons."""
    changes = body or ReasonRequest()
    return _reason_out(
        feedback.add_reason(pool, admin, name, changes.description, changes.position)
    )


@router.delete(
    "/feedback_reasons/{name}",
    status_code=204,
    response_class=Response,
    responses={
        **_ALWAYS,
        **_INVALID,
        **_ADMINS,
        404: {"model": ErrorMessage, "description": "No such reason on the list."},
    },
    summary="Take a reason off the list (admins)",
    tags=["feedback"],
)
def delete_feedback_reason(name: ReasonName, admin: CurrentAdmin, pool: Pool) -> Response:
    """Outputs that have the reason keep it; it can no longer be given."""
    feedback.remove_reason(pool, admin, name)
    return Response(status_code=204)


@router.get(
    "/limits",
    response_model=limits.LimitsOverview,
    responses={**_ALWAYS, **_ADMINS},
    summary="Provider limits and their use (admins)",
    tags=["limits"],
)
def get_limits(admin: CurrentAdmin, pool: Pool) -> limits.LimitsOverview:
    """Every limit per model or prefix, and each limited model seen in the last hour or waiting
    now: requests and tokens in the last minute, calls in flight, outputs waiting, 429s in the
    last hour, its pause and what its next call waits for."""
    return limits.overview(pool, admin)


@router.put(
    "/limits",
    response_model=limits.Limit,
    responses={**_ALWAYS, **_INVALID, **_ADMINS, 413: _CREATES[413]},
    summary="Set a provider limit (admins)",
    tags=["limits"],
)
def put_limit(body: LimitRequest, admin: CurrentAdmin, pool: Pool) -> limits.Limit:
    """Set the limit of a model or prefix, replacing its caps: a cap omitted is no cap; at least
    one is given. Every worker keeps to it from its next fetch; LLMJOBS_MODEL_LIMITS no longer
    changes it."""
    saved = limits.set_limit(
        pool, admin, body.model, rpm=body.rpm, tpm=body.tpm, concurrent=body.concurrent
    )
    return limits.Limit.of(saved)


@router.delete(
    "/limits",
    status_code=204,
    response_class=Response,
    responses={
        **_ALWAYS,
        **_INVALID,
        **_ADMINS,
        404: {"model": ErrorMessage, "description": "No limit on that model or prefix."},
    },
    summary="Remove a provider limit (admins)",
    tags=["limits"],
)
def delete_limit(
    admin: CurrentAdmin,
    pool: Pool,
    model: Annotated[
        str, Query(max_length=200, description="The model or prefix (ending in /) limited.")
    ],
) -> Response:
    """The model's calls are no longer limited, unless a prefix of its name is; a worker
    started with the limit in LLMJOBS_MODEL_LIMITS writes it again at its next start."""
    if not limits.clear_limit(pool, admin, model):
        raise NotFound(f"no limit on {model.strip()!r}")
    return Response(status_code=204)


@health_router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Database or queue unavailable."}},
    summary="Liveness and readiness (no token needed)",
    tags=["health"],
)
def healthz(pool: Pool, response: Response) -> Health:
    state = health.check(pool)
    ok = all(state.values())
    response.status_code = 200 if ok else 503
    return Health(status="ok" if ok else "unavailable", **state)


_CURSOR_PREFIX = "before:"


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int | None:
    """The keyset position in a next_cursor; InvalidInput(field="cursor") for anything else."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        before_id = int(text.removeprefix(_CURSOR_PREFIX))
    except (ValueError, binascii.Error) as exc:
        raise InvalidInput("cursor", "is not a next_cursor this API returned") from exc
    if not 1 <= before_id <= MAX_ID:
        raise InvalidInput("cursor", "is not a next_cursor this API returned")
    return before_id
