"""Request and response bodies of the HTTP API, as they appear in /openapi.json.

Field rules (known model, template variables present, sizes) are checked by the use-cases in
`tasks`; the types here only say what JSON is accepted, plus one guard of the transport: text
that Postgres cannot store (NUL, lone surrogates) is refused at the door.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from db.models import FeedbackValue, Format, Kind, LLMOutput, Queue, Status

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


Text = Annotated[str, AfterValidator(_storable)]
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
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="Values of the template's variables (a JSON object, at most 64 KiB).",
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


class RegenerateRequest(Body):
    new_context: dict[str, Any] | None = Field(
        None, description="Context keys to replace; the other keys of the original stay."
    )
    new_model: Text | None = Field(None, description="Another model; the original's when omitted.")
    new_format: Format | None = Field(
        None, description="Another format; the original's when omitted."
    )


class FeedbackRequest(Body):
    feedback: FeedbackValue


class OutputFilters(Body):
    status: Status | None = None
    # Bounds keep the whole query under the server's 16 KiB request-head limit, even with
    # every character percent-encoded.
    model: Text | None = Field(None, max_length=200)
    template: Text | None = Field(
        None, max_length=500, description="Exact template text (templates up to 500 characters)."
    )
    format: Format | None = None
    feedback: FeedbackValue | None = None
    created_after: Timestamp | None = Field(None, description="Created at or after.")
    created_before: Timestamp | None = Field(None, description="Created before.")
    user_id: Id | None = Field(
        None, description="Only this user's outputs (admins; others always see only their own)."
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
    attempts: int
    error_message: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = Field(None, description="In US dollars, when the price is known.")
    latency_ms: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def of(cls, row: LLMOutput) -> Output:
        return cls.model_validate(row.model_dump())


class OutputPage(BaseModel):
    items: list[Output]
    next_cursor: str | None = Field(
        None, description="Pass as cursor for the next page; null on the last page."
    )


class FeedbackChange(BaseModel):
    output_id: int
    old_value: FeedbackValue
    new_value: FeedbackValue
    created_at: datetime


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
    context: dict[str, Any] = Field(default_factory=dict, description="The template's values.")
    models: list[Text] = Field(description="2 to 6 distinct models, one job each.")
    format: Format | None = Field(None, description="Output format; text when omitted.")
    queue: Queue | None = Field(None, description="Priority queue; default when omitted.")
    blind: bool = Field(False, description="Hide the model names until a pick is recorded.")


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
