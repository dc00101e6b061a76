"""Typed rows of LLM Jobs' tables."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["analyst", "admin"]
Format = Literal["text", "json", "markdown", "html"]
Queue = Literal["high", "default", "low"]
Status = Literal["pending", "processing", "completed", "failed"]
FeedbackValue = Literal["none", "thumbs_up", "thumbs_down"]
Kind = Literal["original", "re_run", "regenerate"]

FORMATS: tuple[str, ...] = Format.__args__
QUEUES: tuple[str, ...] = Queue.__args__
STATUSES: tuple[str, ...] = Status.__args__
FEEDBACK_VALUES: tuple[str, ...] = FeedbackValue.__args__


class Row(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(Row):
    id: int
    name: str
    email: str | None = None
    role: Role
    created_at: datetime
    monthly_budget: Decimal | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class ApiToken(Row):
    id: int
    user_id: int
    user_name: str
    name: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class Agent(Row):
    id: int
    name: str
    description: str
    system_prompt: str
    default_model: str
    default_format: Format
    # the JSON Schema of its json outputs when a submission gives none
    default_json_schema: dict[str, Any] | None = None
    owner_id: int | None = None
    created_at: datetime
    updated_at: datetime


class LLMOutput(Row):
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
    priority: int
    kind: Kind
    parent_id: int | None = None
    status: Status
    prompt: str | None = None
    system_prompt: str | None = None
    raw_response: str | None = None
    parsed_output: Any = None
    feedback: FeedbackValue
    # why, in tags from the reasons list; a comment; what the answer should have been
    feedback_reasons: list[str] = []
    feedback_comment: str | None = None
    corrected_answer: str | None = None
    attempts: int
    error_message: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: Decimal | None = None
    latency_ms: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    template_version_id: int | None = None
    comparison_id: int | None = None
    batch_id: int | None = None
    batch_row: int | None = None
    use_cache: bool = False
    cache_hit_of: int | None = None
    # a json output's JSON Schema; whether an answer validated, and at the first try
    json_schema: dict[str, Any] | None = None
    schema_valid: bool | None = None
    schema_first_try: bool | None = None
    # how the last answer broke the schema, when the output failed so: [{"path", "message"}]
    schema_errors: list[dict[str, str]] | None = None
    # In a blind comparison not yet judged: front ends show no model name.
    blind_pending: bool = False


class FeedbackEvent(Row):
    id: int
    output_id: int
    user_id: int
    user_name: str | None = None
    old_value: FeedbackValue
    new_value: FeedbackValue
    # the feedback as this change left it, and which parts it changed
    reasons: list[str] = []
    comment: str | None = None
    corrected_answer: str | None = None
    changed: list[str] = ["feedback"]
    created_at: datetime


class FeedbackReason(Row):
    name: str
    description: str = ""
    position: int = 0
