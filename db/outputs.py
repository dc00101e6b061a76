"""LLM outputs and their feedback: the sync functions the front ends use and the async ones the
worker uses. Every worker update names the attempt it belongs to, so a stale attempt changes
nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from psycopg.types.json import Jsonb

from db.models import FeedbackEvent, FeedbackReason, LLMOutput
from db.queries import jsonb_or_null, queries


@dataclass(frozen=True)
class NewOutput:
    """A pending output about to be written."""

    user_id: int
    template: str
    model: str
    context: dict[str, Any]
    format: str
    queue: str
    priority: int
    agent_id: int | None = None
    kind: str = "original"
    parent_id: int | None = None
    system_prompt: str | None = None
    template_version_id: int | None = None
    comparison_id: int | None = None
    use_cache: bool = False
    json_schema: dict[str, Any] | None = None

    def params(self) -> dict[str, Any]:
        # vars: asdict would copy the context
        return {
            **vars(self),
            "context": Jsonb(self.context),
            "json_schema": jsonb_or_null(self.json_schema),
        }


def insert_output(conn: psycopg.Connection, output: NewOutput) -> int:
    """Insert a pending output with no job behind it (test helpers); return its id."""
    return conn.execute(queries["insert_output"], output.params()).fetchone()["id"]


class Enqueued(NamedTuple):
    output_id: int
    job_id: int
    ahead: int  # LLM jobs waiting or running ahead of it (counted up to 1,000)
    median_latency_ms: float | None  # the model's recent median latency


def enqueue_output(conn: psycopg.Connection, output: NewOutput, *, task_name: str) -> Enqueued:
    """Insert a pending output and its job (task_name, with the output's id as `output_id`) in
    one statement, which commits or fails whole even in autocommit; with the queue estimate."""
    row = conn.execute(
        queries["enqueue_output"], {**output.params(), "task_name": task_name}
    ).fetchone()
    median = row["median_latency_ms"]
    return Enqueued(
        row["id"], row["job_id"], row["ahead"], float(median) if median is not None else None
    )


def reserve_output_ids(conn: psycopg.Connection, n: int) -> list[int]:
    """n new output ids, ascending, for outputs about to be written."""
    return sorted(r["id"] for r in conn.execute(queries["reserve_output_ids"], {"n": n}))


def get_output(
    conn: psycopg.Connection, output_id: int, *, viewer_id: int | None = None
) -> LLMOutput | None:
    """One output; with viewer_id, None unless that user owns it."""
    row = conn.execute(queries["get_output"], {"id": output_id, "viewer_id": viewer_id}).fetchone()
    return LLMOutput.model_validate(row) if row else None


def list_outputs(
    conn: psycopg.Connection,
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
    """One page of outputs, newest first; pass the last id of a page as before_id for the next."""
    params = {
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
    return [LLMOutput.model_validate(r) for r in conn.execute(queries["list_outputs"], params)]


def output_children(conn: psycopg.Connection, output_id: int) -> list[LLMOutput]:
    rows = conn.execute(queries["output_children"], {"id": output_id})
    return [LLMOutput.model_validate(r) for r in rows]


def set_feedback(
    conn: psycopg.Connection,
    output_id: int,
    *,
    user_id: int,
    feedback: str | None,
    reasons: list[str] | None = None,
    comment: str | None = None,
    set_comment: bool = False,
    corrected_answer: str | None = None,
    set_corrected: bool = False,
) -> FeedbackEvent | None:
    """Change the feedback of a completed output (None: that part kept) and record the change;
    None if not completed."""
    params = {
        "output_id": output_id,
        "user_id": user_id,
        "feedback": feedback,
        "reasons": reasons,
        "comment": comment,
        "set_comment": set_comment,
        "corrected_answer": corrected_answer,
        "set_corrected": set_corrected,
    }
    row = conn.execute(queries["set_feedback"], params).fetchone()
    return FeedbackEvent.model_validate(row) if row else None


def feedback_reasons(conn: psycopg.Connection) -> list[FeedbackReason]:
    return [FeedbackReason.model_validate(r) for r in conn.execute(queries["feedback_reasons"])]


def add_feedback_reason(
    conn: psycopg.Connection, name: str, description: str | None, position: int | None
) -> FeedbackReason:
    """Add a reason or change it; None keeps its description or position (new: empty, last)."""
    params = {"name": name, "description": description, "position": position}
    return FeedbackReason.model_validate(
        conn.execute(queries["add_feedback_reason"], params).fetchone()
    )


def lock_feedback_reasons(conn: psycopg.Connection) -> None:
    """Until the transaction ends, no other change to the reasons list."""
    conn.execute(queries["lock_feedback_reasons"])


def remove_feedback_reason(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute(queries["remove_feedback_reason"], {"name": name}).fetchone() is not None


def feedback_history(conn: psycopg.Connection, output_id: int) -> list[FeedbackEvent]:
    rows = conn.execute(queries["feedback_history"], {"output_id": output_id})
    return [FeedbackEvent.model_validate(r) for r in rows]


# The worker's side: async, on the worker's pool.


@dataclass(frozen=True)
class Answer:
    """What an attempt stores when it completes its output."""

    output_id: int
    attempt: int
    prompt: str
    raw_response: str
    parsed_output: Any
    cache_key: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    latency_ms: int
    # with a schema: whether the first answer validated (False: a re-ask made it)
    schema_first_try: bool | None = None


async def start_attempt(
    conn: psycopg.AsyncConnection, output_id: int, *, attempt: int
) -> LLMOutput | None:
    """Mark the output processing for this attempt and return it; None when the output is final,
    gone, or a newer attempt already started."""
    return (await start_attempts(conn, [(output_id, attempt)])).get(output_id)


async def start_attempts(
    conn: psycopg.AsyncConnection, attempts: Sequence[tuple[int, int]]
) -> dict[int, LLMOutput]:
    """start_attempt for several (output id, attempt) pairs, each output at most once, in one
    statement: the outputs now processing, by id (the others are final, gone, or newer)."""
    params = {"ids": [a[0] for a in attempts], "attempts": [a[1] for a in attempts]}
    cur = await conn.execute(queries["start_attempts"], params)
    return {row["id"]: LLMOutput.model_validate(row) for row in await cur.fetchall()}


async def complete_output(conn: psycopg.AsyncConnection, answer: Answer) -> bool:
    """Store the answer; False when its attempt is no longer the current one."""
    return answer.output_id in await complete_outputs(conn, [answer])


async def complete_outputs(conn: psycopg.AsyncConnection, answers: Sequence[Answer]) -> set[int]:
    """Store several answers, each output at most once, in one statement: the ids of the outputs
    stored (the others' attempts are no longer current)."""
    params = {
        "ids": [a.output_id for a in answers],
        "attempts": [a.attempt for a in answers],
        "prompts": [a.prompt for a in answers],
        "raw_responses": [a.raw_response for a in answers],
        "parsed_outputs": [Jsonb(a.parsed_output) for a in answers],
        "cache_keys": [a.cache_key for a in answers],
        "prompt_tokens": [a.prompt_tokens for a in answers],
        "completion_tokens": [a.completion_tokens for a in answers],
        "costs": [a.cost for a in answers],
        "latencies": [a.latency_ms for a in answers],
        "schema_first_tries": [a.schema_first_try for a in answers],
    }
    cur = await conn.execute(queries["complete_outputs"], params)
    return {row["id"] for row in await cur.fetchall()}


async def retry_output(
    conn: psycopg.AsyncConnection,
    output_id: int,
    *,
    attempt: int,
    error_message: str,
    raw_response: str | None = None,
    prompt: str | None = None,
) -> bool:
    """Put the output back to pending with the error of this attempt."""
    params = {
        "id": output_id,
        "attempt": attempt,
        "error_message": error_message,
        "raw_response": raw_response,
        "prompt": prompt,
    }
    cur = await conn.execute(queries["retry_output"], params)
    return await cur.fetchone() is not None


async def fail_output(
    conn: psycopg.AsyncConnection,
    output_id: int,
    *,
    attempt: int,
    error_message: str,
    raw_response: str | None = None,
    prompt: str | None = None,
    schema_errors: list[dict[str, str]] | None = None,
) -> bool:
    """Mark the output failed (schema_errors: because its last answer broke its JSON Schema so,
    each error a {"path", "message"}); False when this attempt is no longer the current one."""
    params = {
        "id": output_id,
        "attempt": attempt,
        "error_message": error_message,
        "raw_response": raw_response,
        "prompt": prompt,
        "schema_broken": bool(schema_errors),
        "schema_errors": Jsonb(schema_errors) if schema_errors else None,
    }
    cur = await conn.execute(queries["fail_output"], params)
    return await cur.fetchone() is not None


async def fail_output_by_job(
    conn: psycopg.AsyncConnection, job_id: int, *, error_message: str
) -> list[int]:
    """Fail the unfinished output of a job that will not run again; return the ids failed."""
    cur = await conn.execute(
        queries["fail_output_by_job"], {"job_id": job_id, "error_message": error_message}
    )
    return [r["id"] for r in await cur.fetchall()]


def count_user_outputs(conn: psycopg.Connection, user_id: int) -> dict[str, int]:
    rows = conn.execute(queries["count_user_outputs"], {"user_id": user_id})
    return {r["status"]: r["n"] for r in rows}


def set_output_state(
    conn: psycopg.Connection,
    output_id: int,
    *,
    status: str,
    raw_response: str | None = None,
    parsed_output: Any = None,
    feedback: str = "none",
    error_message: str | None = None,
) -> LLMOutput:
    """Put an output in a state directly (test helpers, imports); the worker never uses this."""
    params = {
        "id": output_id,
        "status": status,
        "raw_response": raw_response,
        "parsed_output": Jsonb(parsed_output),
        "feedback": feedback,
        "error_message": error_message,
    }
    return LLMOutput.model_validate(conn.execute(queries["set_output_state"], params).fetchone())


def set_schema_outcome(
    conn: psycopg.Connection, output_id: int, *, valid: bool | None, first_try: bool | None
) -> None:
    """Record how an output's answer fared against its schema (test helpers)."""
    conn.execute(
        queries["set_schema_outcome"], {"id": output_id, "valid": valid, "first_try": first_try}
    )


def last_job_id(conn: psycopg.Connection) -> int:
    return conn.execute(queries["last_job_id"]).fetchone()["id"]


def llm_jobs_since(conn: psycopg.Connection, after_id: int) -> list[dict[str, Any]]:
    """LLM jobs queued after a job id, each with its output's template, model, format, context
    and JSON Schema."""
    return list(conn.execute(queries["llm_jobs_since"], {"after_id": after_id}))


def insert_outputs_bulk(
    conn: psycopg.Connection,
    *,
    ids: list[int],
    job_ids: list[int],
    user_id: int,
    template: str,
    model: str,
    contexts: list[dict[str, Any]],
    format: str,
    queue: str,
    priority: int,
    agent_id: int | None = None,
    system_prompt: str | None = None,
    template_version_id: int | None = None,
    use_cache: bool = False,
    json_schema: dict[str, Any] | None = None,
) -> None:
    """Insert one pending output per context, with the ids reserved for them and their jobs
    (three lists in the same order), all with the same JSON Schema (if any)."""
    params = {
        "ids": ids,
        "job_ids": job_ids,
        "user_id": user_id,
        "agent_id": agent_id,
        "template": template,
        "model": model,
        "contexts": [Jsonb(c) for c in contexts],
        "format": format,
        "queue": queue,
        "priority": priority,
        "system_prompt": system_prompt,
        "template_version_id": template_version_id,
        "use_cache": use_cache,
        "json_schema": jsonb_or_null(json_schema),
    }
    conn.execute(queries["insert_outputs_bulk"], params)


def set_output_jobs_bulk(conn: psycopg.Connection, ids: list[int], job_ids: list[int]) -> None:
    conn.execute(queries["set_output_jobs_bulk"], {"ids": ids, "job_ids": job_ids})
