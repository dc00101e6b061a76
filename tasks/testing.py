"""Test helpers for code built on LLM Jobs (a pytest plugin, loaded automatically once installed).

- `create_test_llm_output(pool, user, ...)` writes an output in any state without a worker (a
  json one may take a `json_schema`: its answer is then marked valid or not against it), with
  its feedback: `feedback` (the thumbs), `reasons`, `comment` and `corrected_answer`.
- `stub_model_success(answers)` / `stub_model_failure(status_code)` register a litellm provider
  `stub/...` that answers per format or fails like a provider would; use the model name they yield.
  Asked for JSON with a JSON Schema, the success stub answers a value of the schema, unless
  `answers` gives the json answer.
- `assert_llm_job_enqueued(pool, template=..., model=..., json_schema=...)` is a context manager
  that fails unless the block queued a matching LLM job.
- `publish_served_models(pool)` puts what a worker started in this process's environment would
  serve into the model catalog, so a test can queue provider models before any worker runs.

Fixtures: `llm_stub_success` and `llm_stub_failure` give the stub model's name.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from db import outputs
from db.models import LLMOutput, User
from tasks.config import QUEUE_PRIORITY, before_litellm_import

DEFAULT_ANSWERS = {
    "text": "A stub answer.",
    "json": '{"answer": "stub", "ok": true}',
    "markdown": "## Stub\n\n- a *stub* answer\n",
    "html": "<p>A <strong>stub</strong> answer.</p>",
}
_counter = itertools.count(1)


def publish_served_models(pool: ConnectionPool, host: str = "tests") -> None:
    """Publish to the model catalog what a worker with this process's environment serves (as a
    worker does when it starts): its provider models are then accepted before any worker runs.
    The entry counts as a live worker for tasks.llm.catalog.fresh_within() seconds."""
    from db import catalog as catalog_db
    from tasks.llm import catalog
    from tasks.llm.calls import served_models  # litellm: what a worker would import

    with pool.connection() as conn:
        catalog_db.publish_sync(conn, catalog.worker_name(), host, served_models())


def create_test_llm_output(
    pool: ConnectionPool,
    user: User,
    *,
    template: str = "Explain {{concept}} to a beginner",
    context: dict[str, Any] | None = None,
    model: str = "offline/echo",
    format: str = "text",
    status: str = "completed",
    raw_response: str | None = "A test answer.",
    parsed_output: Any = None,
    feedback: str = "none",
    error_message: str | None = None,
    queue: str = "default",
    json_schema: dict[str, Any] | str | None = None,
    reasons: Sequence[str] = (),
    comment: str | None = None,
    corrected_answer: str | None = None,
) -> LLMOutput:
    """An output row in the given state, with no job behind it. With a JSON Schema (json format
    only, checked as a submission's is), a completed output's answer is marked valid or not
    against it. Its feedback may carry reasons (from the reasons list), a comment and a
    corrected answer, checked as people's are; like the thumbs, they are written as they are,
    with no feedback event."""
    from db import feedback_details
    from tasks.feedback import checked_details
    from tasks.llm import schemas
    from tasks.outputs import checked_schema

    schema = checked_schema(json_schema, format)
    if status == "failed" and error_message is None:
        error_message = "test failure"
    with pool.connection() as conn:
        given = bool(reasons) or comment is not None or corrected_answer is not None
        details = checked_details(conn, reasons, comment, corrected_answer) if given else None
        output_id = outputs.insert_output(
            conn,
            outputs.NewOutput(
                user_id=user.id,
                template=template,
                model=model,
                context=context if context is not None else {"concept": "recursion"},
                format=format,
                queue=queue,
                priority=QUEUE_PRIORITY[queue],
                json_schema=schema,
            ),
        )
        if status != "pending":
            if schema is not None and status == "completed":
                answer = parsed_output if parsed_output is not None else raw_response
                valid = not schemas.validation_errors(schema, answer)
                outputs.set_schema_outcome(conn, output_id, valid=valid, first_try=valid)
            outputs.set_output_state(
                conn,
                output_id,
                status=status,
                raw_response=raw_response,
                parsed_output=parsed_output if parsed_output is not None else raw_response,
                feedback=feedback,
                error_message=error_message,
            )
        if details is not None:
            tags, note, corrected = details
            feedback_details.set_feedback_details(
                conn, output_id, reasons=tags, comment=note, corrected_answer=corrected
            )
        return outputs.get_output(conn, output_id)


def _stub_handler(respond: Callable[[str, list[dict[str, Any]], dict[str, Any]], Any]) -> Any:
    before_litellm_import()
    import litellm
    from litellm import CustomLLM

    class Stub(CustomLLM):
        def _reply(self, model: str, messages: list[dict[str, Any]], kwargs: dict) -> Any:
            content = respond(model, messages, kwargs)
            return litellm.ModelResponse(
                model=f"stub/{model}",
                choices=[
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                usage={"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
            )

        def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            return self._reply(model, messages, kwargs)

        async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            return self._reply(model, messages, kwargs)

    return Stub()


def _requested_schema(messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> Any:
    """The JSON Schema a request asks for: its response format's, else the instruction's."""
    import json

    from tasks.llm.formats import SCHEMA_MARKER

    asked = (kwargs.get("optional_params") or {}).get("response_format") or kwargs.get(
        "response_format"
    )
    if isinstance(asked, dict) and isinstance(asked.get("json_schema"), dict):
        return asked["json_schema"].get("schema")
    system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    at = system.find(SCHEMA_MARKER)
    if at < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(system, at + len(SCHEMA_MARKER))[0]
    except ValueError:
        return None


def _requested_format(messages: list[dict[str, Any]]) -> str:
    from tasks.llm.formats import INSTRUCTIONS

    system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    for fmt in ("json", "html", "markdown"):
        if INSTRUCTIONS[fmt] in system:
            return fmt
    return "text"


@contextlib.contextmanager
def _registered(provider: str, handler: Any) -> Iterator[None]:
    from tasks.llm import calls

    calls.register_provider(provider, handler)
    try:
        yield
    finally:
        calls.unregister_provider(provider)


@contextlib.contextmanager
def stub_model_success(answers: dict[str, str] | None = None) -> Iterator[str]:
    """A model that answers every request with answers[requested format]; yields its name."""
    table = {**DEFAULT_ANSWERS, **(answers or {})}
    provider = f"stub{next(_counter)}"
    json_given = "json" in (answers or {})

    def respond(model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> str:
        fmt = _requested_format(messages)
        schema = _requested_schema(messages, kwargs) if fmt == "json" and not json_given else None
        if schema is not None:
            import json

            from tasks.llm import instances

            return json.dumps(instances.instance(schema, ["stub", "answer"]))
        return table[fmt]

    with _registered(provider, _stub_handler(respond)):
        yield f"{provider}/success"


@contextlib.contextmanager
def stub_model_failure(status_code: int = 500, message: str = "stub failure") -> Iterator[str]:
    """A model that fails every request like a provider answering status_code; yields its name."""
    before_litellm_import()
    import litellm

    errors = {
        400: litellm.BadRequestError,
        401: litellm.AuthenticationError,
        403: litellm.PermissionDeniedError,
        404: litellm.NotFoundError,
        408: litellm.Timeout,
        429: litellm.RateLimitError,
        503: litellm.ServiceUnavailableError,
    }
    provider = f"stub{next(_counter)}"

    def respond(model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> str:
        error = errors.get(status_code, litellm.InternalServerError)
        raise error(message=message, model=model, llm_provider=provider)

    with _registered(provider, _stub_handler(respond)):
        yield f"{provider}/failure"


@contextlib.contextmanager
def assert_llm_job_enqueued(
    pool: ConnectionPool,
    *,
    template: str | None = None,
    model: str | None = None,
    count: int = 1,
    json_schema: dict[str, Any] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Fail unless the block queues `count` LLM jobs matching template, model and JSON Schema
    (each when given). Yields a list that holds the matching jobs after the block."""
    with pool.connection() as conn:
        before = outputs.last_job_id(conn)
    found: list[dict[str, Any]] = []
    yield found
    with pool.connection() as conn:
        queued = outputs.llm_jobs_since(conn, before)
    found.extend(
        job
        for job in queued
        if (template is None or job["template"] == template)
        and (model is None or job["model"] == model)
        and (json_schema is None or job["json_schema"] == json_schema)
    )
    assert len(found) == count, (
        f"expected {count} LLM job(s) with template={template!r} model={model!r}"
        f"{'' if json_schema is None else ' and that JSON Schema'}; "
        f"queued: {[(j['template'], j['model']) for j in queued]}"
    )


@pytest.fixture
def llm_stub_success() -> Iterator[str]:
    with stub_model_success() as model:
        yield model


@pytest.fixture
def llm_stub_failure() -> Iterator[str]:
    with stub_model_failure(500) as model:
        yield model
