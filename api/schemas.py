"""Request and response bodies of the HTTP API, as they appear in /openapi.json.

Field rules (known model, template variables present, sizes) are checked by the use-cases in
`tasks`; the types here only say what JSON is accepted, plus one guard of the transport: text
that Postgres cannot store (NUL, lone surrogates) is refused at the door.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from db.models import FeedbackValue, Format, Kind, LLMOutput, Queue, Status
from tasks.batches import Batch
from tasks.config import LIMIT_MAXIMA
from tasks.errors import InvalidInput
from tasks.feedback import (
    MAX_COMMENT_CHARS,
    MAX_CORRECTED_CHARS,
    MAX_DESCRIPTION_CHARS,
    MAX_REASONS,
)
from tasks.llm import rendering
from tasks.outputs import MAX_COMMENT_SEARCH_CHARS

MAX_ID = 2**63 - 1


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("is not valid Unicode text") from exc
    return value


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def _rfc3339(value: Any) -> Any:
    # Without this, "0.5" would pass as a Unix time: only unambiguous instants are taken.
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("must be a date-time with offset, e.g. 2025-01-31T09:00:00Z")
    return value


def _shallow(value: Any) -> Any:
    # Checked here as well as by the use-case: the request body is serialised (for idempotency)
    # before any use-case sees it, and serialising a deeper value fails.
    try:
        return rendering.check_depth(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


Text = Annotated[str, AfterValidator(_storable)]
Context = Annotated[dict[str, Any], AfterValidator(_shallow)]
JsonSchema = Annotated[dict[str, Any], AfterValidator(_shallow)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobRequest(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "template": "Explain {{concept}} to a beginner",
                    "context": {"concept": "recursion"},
                    "model": "offline/echo",
                    "format": "markdown",
                }
            ]
        },
    )

    template: Text | None = Field(
        None,
        description="Jinja2 prompt template; every variable it uses must be in context. "
        "Or give template_name for a library template.",
        examples=["Explain {{concept}} to a beginner"],
    )
    template_name: Text | None = Field(None, description="A template of the library.")
    template_version: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = Field(
        None, description="A version of template_name; the latest when omitted."
    )
    context: Context = Field(
        default_factory=dict,
        description="Values of the template's variables (a JSON object, at most 64 KiB and "
        f"{rendering.MAX_CONTEXT_DEPTH} levels deep).",
        examples=[{"concept": "recursion"}],
    )
    model: Text | None = Field(
        None,
        description="litellm model name (see GET /api/v1/models); the agent's when omitted.",
        examples=["offline/echo"],
    )
    format: Format | None = Field(
        None, description="Output format; the agent's default, else text, when omitted."
    )
    queue: Queue | None = Field(None, description="Priority queue; default when omitted.")
    agent_id: Id | None = Field(
        None, description="An agent whose system prompt and defaults the job starts from."
    )
    cache: bool | None = Field(
        None,
        description="Reuse a recent completed answer to the same prompt, model and format "
        "instead of calling the model; LLMJOBS_CACHE (off by default) when omitted.",
    )
    json_schema: JsonSchema | None = Field(
        None,
        description="For format json: a JSON Schema (Draft 2020-12) every answer must validate "
        "against. Asked of the model as its response format when it supports one, else in the "
        "instruction; an answer that does not validate is re-asked with the validator's errors, "
        "then fails with them. At most 64 KiB and 32 levels; references only inside the "
        "schema (#/$defs/...); `pattern` in RE2 syntax; no patternProperties.",
        examples=[
            {
                "type": "object",
                "properties": {
                    "summary": {"type": "string"},
                    "score": {"type": "integer", "minimum": 1, "maximum": 5},
                },
                "required": ["summary", "score"],
            }
        ],
    )


class RegenerateRequest(Body):
    new_context: Context | None = Field(
        None, description="Context keys to replace; the other keys of the original stay."
    )
    new_model: Text | None = Field(None, description="Another model; the original's when omitted.")
    new_format: Format | None = Field(
        None, description="Another format; the original's when omitted."
    )


class FeedbackRequest(Body):
    """Any of the parts, at least one; a part left out is kept."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "feedback": "thumbs_down",
                    "reasons": ["incomplete"],
                    "comment": "Leaves out the base case.",
                    "corrected_answer": "Recursion is a function calling itself until a base "
                    "case stops it.",
                }
            ]
        },
    )

    feedback: FeedbackValue | None = Field(None, description="The thumbs; kept when omitted.")
    reasons: list[Text] | None = Field(
        None,
        description=f"Reason tags from GET /api/v1/feedback_reasons, at most {MAX_REASONS}; "
        "[] clears them; kept when omitted.",
    )
    comment: Text | None = Field(
        None,
        description=f'At most {MAX_COMMENT_CHARS:,} characters; null or "" clears it; kept '
        "when omitted.",
    )
    corrected_answer: Text | None = Field(
        None,
        description=f"What the answer should have been, at most {MAX_CORRECTED_CHARS:,} "
        'characters; null or "" clears it; kept when omitted.',
    )


class OutputSelection(Body):
    """The query filters that the outputs list and the dataset export share."""

    # Bounds keep the whole query under the server's 16 KiB request-head limit, even with
    # every character percent-encoded.
    model: Text | None = Field(None, max_length=200)
    template: Text | None = Field(
        None, max_length=500, description="Exact template text (templates up to 500 characters)."
    )
    format: Format | None = None
    created_after: Timestamp | None = Field(None, description="Created at or after.")
    created_before: Timestamp | None = Field(None, description="Created before.")
    user_id: Id | None = Field(
        None, description="Only this user's outputs (admins; others always see only their own)."
    )


class OutputFilters(OutputSelection):
    status: Status | None = None
    feedback: FeedbackValue | None = None
    comment_contains: Text | None = Field(
        None,
        max_length=MAX_COMMENT_SEARCH_CHARS,
        description="Only outputs whose feedback comment contains this text (any case; % and _ "
        "are plain characters). The page is then newest first by creation time.",
    )
    limit: int = Field(50, ge=1, le=200, description="Page size.")
    cursor: Text | None = Field(
        None, max_length=100, description="next_cursor of the previous page."
    )


class Output(BaseModel):
    """One LLM output: what was asked, its state, and the answer once completed."""

    id: int
    user_id: int
    user_name: str | None = None
    agent_id: int | None = None
    job_id: int | None = None
    template: str
    model: str
    context: dict[str, Any]
    format: Format
    queue: Queue
    kind: Kind
    parent_id: int | None = Field(None, description="The output re-run or regenerated.")
    status: Status
    prompt: str | None = Field(None, description="The rendered prompt, once the job started.")
    system_prompt: str | None = None
    raw_response: str | None = None
    parsed_output: Any = Field(None, description="The answer parsed per format (JSON or text).")
    feedback: FeedbackValue
    feedback_reasons: list[str] = Field([], description="Reason tags given with the feedback.")
    feedback_comment: str | None = Field(None, description="The feedback's comment.")
    corrected_answer: str | None = Field(None, description="What the answer should have been.")
    attempts: int
    error_message: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = Field(None, description="In US dollars, when the price is known.")
    latency_ms: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    batch_id: int | None = Field(None, description="The batch this output is a row of.")
    batch_row: int | None = Field(None, description="Its row number in the batch, from 1.")
    cache_hit_of: int | None = Field(
        None, description="The earlier output whose answer was reused from the response cache."
    )
    json_schema: dict[str, Any] | None = Field(
        None, description="The JSON Schema its answer must validate against (format json)."
    )
    schema_valid: bool | None = Field(
        None,
        description="With a schema: true once an answer validated, false when the output "
        "failed because none did.",
    )
    schema_first_try: bool | None = Field(
        None, description="With a schema: whether the first answer validated (no re-ask)."
    )
    schema_errors: list[dict[str, str]] | None = Field(
        None,
        description="When it failed because no answer validated: how the last one broke the "
        'schema, each error a {"path": "$.score", "message": "..."}.',
    )

    @classmethod
    def of(cls, row: LLMOutput) -> Output:
        return cls.model_validate(row.model_dump())


class OutputPage(BaseModel):
    items: list[Output]
    next_cursor: str | None = Field(
        None, description="Pass as cursor for the next page; null on the last page."
    )


class FeedbackChange(BaseModel):
    """One change of an output's feedback: the feedback as it left it, and what it changed."""

    id: int
    output_id: int
    old_value: FeedbackValue = Field(description="The thumbs before the change.")
    new_value: FeedbackValue = Field(description="The thumbs after it.")
    reasons: list[str] = Field(description="The reasons after it.")
    comment: str | None = Field(description="The comment after it.")
    corrected_answer: str | None = Field(description="The corrected answer after it.")
    changed: list[str] = Field(
        description="The parts it changed: feedback, reasons, comment, corrected_answer "
        "(feedback whenever thumbs were given, even the same ones)."
    )
    user_id: int = Field(description="Who made it.")
    user_name: str | None = None
    created_at: datetime


class ReasonOut(BaseModel):
    name: str
    description: str
    position: int = Field(description="The list is shown by position, then name.")


ReasonPosition = Annotated[int, Field(strict=True, ge=0, le=1000)]


class ReasonRequest(Body):
    description: Text | None = Field(
        None,
        description=f"What the reason means, at most {MAX_DESCRIPTION_CHARS} characters; "
        "kept when omitted (empty for a new reason).",
    )
    position: ReasonPosition | None = Field(
        None, description="0 to 1,000; kept when omitted (a new reason goes last)."
    )


class ModelInfo(BaseModel):
    name: str
    provider: str
    offline: bool = Field(description="Runs without a network provider.")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: bool = Field(description="PostgreSQL reachable and migrated.")
    queue: bool = Field(description="The procrastinate job queue is in place.")


class FieldError(BaseModel):
    field: str = Field(description="The field, query parameter or header to fix.")
    message: str


class ValidationErrors(BaseModel):
    detail: list[FieldError]


class ErrorMessage(BaseModel):
    detail: str


class ComparisonRequest(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "template": "Explain {{concept}} to a beginner",
                    "context": {"concept": "recursion"},
                    "models": ["offline/echo", "openai/gpt-4o-mini"],
                    "format": "markdown",
                    "blind": True,
                }
            ]
        },
    )

    template: Text | None = Field(
        None, description="Jinja2 prompt template; or give template_name for a library template."
    )
    template_name: Text | None = Field(None, description="A template of the library.")
    template_version: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = Field(
        None, description="A version of template_name; the latest when omitted."
    )
    context: Context = Field(default_factory=dict, description="The template's values.")
    models: list[Text] = Field(description="2 to 6 distinct models, one job each.")
    format: Format | None = Field(None, description="Output format; text when omitted.")
    queue: Queue | None = Field(None, description="Priority queue; default when omitted.")
    blind: bool = Field(False, description="Hide the model names until a pick is recorded.")
    json_schema: JsonSchema | None = Field(
        None,
        description="For format json: a JSON Schema (Draft 2020-12) every model's answer must "
        "validate against, as `json_schema` of `POST /api/v1/llm_jobs`. Without it, a "
        "library template version's schema applies.",
    )


class ComparisonAnswer(BaseModel):
    label: str = Field(description="A, B, C... in the order the answers were queued.")
    output_id: int
    model: str | None = Field(description="Null while the comparison is blind and not picked.")
    status: Status
    parsed_output: Any = None
    error_message: str | None = None


class ComparisonOut(BaseModel):
    comparison_id: int
    blind: bool
    picked: bool
    tie: bool
    json_schema: dict[str, Any] | None = Field(
        None, description="The JSON Schema every answer validates against."
    )
    winner_output_id: int | None
    answers: list[ComparisonAnswer]


class PickRequest(Body):
    winner_output_id: Id | None = Field(
        description="The better answer's output id, or null for a tie."
    )


class LeaderboardOut(BaseModel):
    entries: list[dict[str, Any]]
    suggested: str | None = Field(
        description="The model with the best lower bound of thumbs-up rate within the cost ceiling."
    )


# Any JSON value is taken so that a row that is not an object is reported by its number, like
# every other bad row; the document still says what a row should be.
BatchRow = Annotated[Any, WithJsonSchema({"type": "object"})]


class BatchRequest(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "template": "Explain {{concept}} to {{audience}}",
                    "model": "offline/echo",
                    "name": "glossary",
                    "csv": "concept,audience\nrecursion,a beginner\nclosures,an expert\n",
                }
            ]
        },
    )

    template: Text = Field(description="Jinja2 prompt template, rendered with each row.")
    model: Text = Field(description="litellm model name (see GET /api/v1/models), for every row.")
    format: Format | None = Field(None, description="Output format; text when omitted.")
    queue: Queue | None = Field(None, description="Priority queue; low when omitted.")
    name: Text = Field("", max_length=200, description="A name to find the batch by.")
    skip_invalid: bool = Field(
        False,
        description="Queue the good rows and report the bad ones in skipped, instead of "
        "refusing the whole batch.",
    )
    cache: bool | None = Field(
        None, description="Reuse recent identical answers; LLMJOBS_CACHE when omitted."
    )
    rows: list[BatchRow] | None = Field(
        None,
        description="The rows as JSON objects, one job each. Give exactly one of rows, csv, jsonl.",
    )
    csv: Text | None = Field(
        None,
        description="The rows as CSV text: a header row naming the columns, then one "
        "row per job (values are text).",
    )
    jsonl: Text | None = Field(
        None, description="The rows as JSON Lines text: one JSON object per line."
    )
    json_schema: JsonSchema | None = Field(
        None,
        description="For format json: a JSON Schema (Draft 2020-12) every row's answer must "
        "validate against, as `json_schema` of `POST /api/v1/llm_jobs`. The results CSV then "
        "has a column per top-level property of an object schema.",
    )

    @field_validator("rows")
    @classmethod
    def _rows_shallow(cls, rows: list[Any] | None) -> list[Any] | None:
        for number, row in enumerate(rows or (), start=1):
            if rendering.nesting(row) > rendering.MAX_CONTEXT_DEPTH:
                raise ValueError(f"row {number}: {rendering.NESTED_TOO_DEEPLY}")
        return rows


class SkippedRow(BaseModel):
    row: int = Field(description="Row number, from 1 (a CSV header row is not counted).")
    field: str
    message: str


class BatchOut(BaseModel):
    """A batch and its progress."""

    id: int
    user_id: int
    name: str
    template: str
    model: str
    format: Format
    queue: Queue
    columns: list[str] = Field(description="The rows' columns, in file order.")
    skipped: list[SkippedRow] = Field(description="Rows left out (skip_invalid).")
    created_at: datetime
    cancelled_at: datetime | None = Field(
        None, description="When it was cancelled; null again once its failed rows are retried."
    )
    total: int = Field(description="Rows in the batch (skipped ones not counted).")
    completed: int
    failed: int = Field(description="Failed rows (cancelled ones are counted apart).")
    cancelled: int = Field(0, description="Rows cancelled before they started.")
    unfinished: int = Field(description="Rows pending or running.")
    cost: float = Field(description="In US dollars, over the rows whose price is known.")
    json_schema: dict[str, Any] | None = Field(
        None, description="The JSON Schema every row's answer validates against."
    )

    @classmethod
    def of(cls, batch: Batch) -> BatchOut:
        skipped = [SkippedRow(row=n, field=f, message=m) for n, f, m in batch.skipped]
        return cls.model_validate({**batch.model_dump(), "skipped": skipped})


class BatchCancelled(BaseModel):
    cancelled: int = Field(description="Rows cancelled before they started.")


class BatchRetried(BaseModel):
    queued: int = Field(description="Failed rows queued again.")


class ExportFilters(OutputSelection):
    kind: Literal["all", "golden", "eval"] = Field(
        "all",
        description=(
            "all completed outputs, golden (thumbs-up ones and those with a corrected answer, "
            "which then gives the answer) or eval (thumbs-down) ones."
        ),
    )


# Whole numbers only: 5.0, "5" and true are refused, not converted.
Rpm = Annotated[int, Field(strict=True, ge=1, le=LIMIT_MAXIMA["rpm"])]
Tpm = Annotated[int, Field(strict=True, ge=1, le=LIMIT_MAXIMA["tpm"])]
Concurrent = Annotated[int, Field(strict=True, ge=1, le=LIMIT_MAXIMA["concurrent"])]


def _cap(name: str, what: str) -> Any:
    return Field(
        None, description=f"{what}, 1 to {LIMIT_MAXIMA[name]:,}; no cap when omitted or null."
    )


class LimitRequest(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"model": "openai/gpt-4o", "rpm": 500, "tpm": 30000, "concurrent": 20}]
        },
    )

    model: Text = Field(
        max_length=200,
        description="A model's name, or a prefix ending in / (openai/) for every model it "
        "starts. A model takes its own limit, else the longest prefix of its name.",
    )
    rpm: Rpm | None = _cap("rpm", "Requests per minute")
    tpm: Tpm | None = _cap("tpm", "Tokens per minute (prompt and answer)")
    concurrent: Concurrent | None = _cap("concurrent", "Calls in flight")
