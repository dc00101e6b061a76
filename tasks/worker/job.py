"""The LLM job: render, call the model, parse, store.

Run by `procrastinate --app=tasks.app worker`.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from db import batches, outputs
from db import limits as limits_db
from tasks import limits
from tasks.config import LLM_TASK, get_settings
from tasks.errors import InvalidInput
from tasks.llm import calls, formats, rendering, schemas
from tasks.llm.errors import ModelError, PermanentModelError, TransientModelError
from tasks.logs import cut_echoes, get_logger, start_withholding, text_leaves, withhold
from tasks.worker.app import LLMJobsJobManager, app
from tasks.worker.retry import LLMRetryStrategy

log = get_logger("llmjobs.worker")


class AnswerNotParsed(PermanentModelError):
    """The model's answer never fitted the format (or its JSON Schema: schema_errors); the last
    raw answer is kept."""

    def __init__(
        self,
        message: str,
        raw_response: str,
        requests: int = 1,
        schema_errors: list[schemas.SchemaError] | None = None,
    ):
        super().__init__(message)
        self.raw_response = raw_response
        self.requests = requests
        self.schema_errors = schema_errors


def build_messages(
    prompt: str, fmt: str, system_prompt: str | None, json_schema: dict[str, Any] | None = None
) -> list[dict[str, str]]:
    """The conversation sent to the model: agent's system prompt and format instruction (with
    the JSON Schema in it, if any), prompt."""
    system = "\n\n".join(
        p for p in (system_prompt or "", formats.instruction(fmt, json_schema)) if p
    )
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return messages


def cap(text: str, limit: int) -> str:
    """text, cut at limit characters with a note saying so."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[truncated: the answer had {len(text)} characters, {limit} kept]"


async def ask(
    model: str,
    messages: list[dict[str, str]],
    fmt: str,
    json_schema: dict[str, Any] | None = None,
) -> tuple[Any, str, dict]:
    """Call the model, re-asking (at most LLMJOBS_JSON_REASKS times) while a json answer does not
    parse or, with a JSON Schema, does not validate against it (the validator's errors sent
    back). The schema goes to the model as its response format when litellm says the model
    takes one, and is in the instruction anyway; every answer is validated here. Returns
    (parsed, raw, usage figures); `requests` counts the calls made, also on the AnswerNotParsed
    raised, and `schema_first_try` says whether the first answer validated."""
    settings = get_settings()
    usage: dict[str, Any] = {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost": 0.0,
        "latency_ms": 0,
    }
    native = json_schema if json_schema is not None and calls.native_schema(model) else None
    conversation = list(messages)
    for reask in range(settings.json_reasks + 1):
        usage["requests"] = reask + 1
        answer = await calls.call_model(model, conversation, json_schema=native)
        for key in ("prompt_tokens", "completion_tokens", "cost"):
            value = getattr(answer, key)
            usage[key] = None if value is None or usage[key] is None else usage[key] + value
        usage["latency_ms"] += answer.latency_ms
        withhold(answer.text)  # no log line of this job carries its answer
        raw = cap(answer.text, settings.max_response_chars)
        if fmt != "json" and not raw.strip():
            raise PermanentModelError("the model returned an empty answer")
        broken: list[schemas.SchemaError] = []
        try:
            parsed = formats.parse(fmt, raw)
            if fmt == "json":
                withhold(*text_leaves(parsed))  # a validator's message quotes the answer's values
            if json_schema is not None:
                broken = schemas.validation_errors(json_schema, parsed)
        except formats.ParseError as exc:
            problem = f"That was not valid JSON ({exc})."
            failure = str(exc)
        except schemas.SchemaTooExpensive as exc:
            raise AnswerNotParsed(
                f"the answer cannot be checked against its JSON Schema: {exc}",
                raw,
                requests=reask + 1,
            ) from exc
        else:
            if not broken:
                if json_schema is not None:
                    usage["schema_first_try"] = reask == 0
                return parsed, raw, usage
            problem = f"That JSON does not match the JSON Schema: {schemas.describe(broken)}."
            failure = f"the answer does not match its JSON Schema: {schemas.describe(broken)}"
        if reask == settings.json_reasks:
            raise AnswerNotParsed(failure, raw, requests=reask + 1, schema_errors=broken or None)
        log.info("answer re-asked", model=model, reask=reask + 1, error=failure[:500])
        conversation = [
            *messages,
            {"role": "assistant", "content": answer.text},
            {"role": "user", "content": f"{problem} {formats.instruction(fmt, json_schema)}"},
        ]
    raise AssertionError("unreachable")


def cache_key(
    model: str,
    fmt: str,
    messages: list[dict[str, str]],
    json_schema: dict[str, Any] | None = None,
) -> str:
    """What identifies a question for the response cache: model, format, JSON Schema (if any)
    and the exact messages (system prompt and rendered prompt)."""
    asked: list[Any] = [model, fmt, messages]
    if json_schema is not None:
        asked.append(json_schema)
    payload = json.dumps(asked, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


async def _answer_from_cache(
    pool: Any, output: Any, attempt: int, prompt: str, key: str, began: float
) -> bool:
    """Complete the output with its user's recent identical answer, if there is one."""
    output_id = output.id
    async with pool.connection() as conn:
        cached = await batches.find_cached_answer(
            conn,
            cache_key=key,
            window_seconds=get_settings().cache_window,
            output_id=output_id,
            user_id=output.user_id,
        )
        if cached is None:
            return False
        return await batches.complete_from_cache(
            conn,
            output_id,
            attempt=attempt,
            prompt=prompt,
            cached=cached,
            cache_key=key,
            latency_ms=int((time.perf_counter() - began) * 1000),
        )


@app.task(name=LLM_TASK, pass_context=True, retry=LLMRetryStrategy())
async def llm_job(context: Any, output_id: int) -> None:
    """Run one attempt of an output's job. A failure propagates to the retry policy and the
    final-failure middleware."""
    job = context.job
    attempt = job.attempts + 1
    start_withholding()  # a worker's task runs one job after another: forget the last one's texts
    # the worker's writes to outputs, coalesced across its jobs (LLMJobsApp's job manager)
    manager: LLMJobsJobManager = context.app.job_manager
    output = await manager.start_attempt(job.id, output_id, attempt)
    limited = manager.limited_model(job.id)
    if output is None:
        log.info(
            "skipped",
            job_id=job.id,
            output_id=output_id,
            reason="output final, gone, or a newer attempt runs",
        )
        if limited is not None:  # no call made: the capacity taken goes back
            await manager.release((job.id, 0, None, 0))
        return
    fields = {
        "job_id": job.id,
        "output_id": output_id,
        "template": output.template[:200],
        "model": output.model,
        "user_id": output.user_id,
        "attempt": attempt,
    }
    log.info("started", **fields)
    if limited is None:
        await _run(context, output, attempt, fields)
        return
    # the fetch took capacity under the model's limit: give it back with the real usage
    usage: dict[str, Any] = {}
    try:
        usage = await _run(context, output, attempt, fields)
    except AnswerNotParsed as exc:
        usage = {"requests": exc.requests}
        raise
    finally:
        release = (job.id, usage.get("tokens"), usage.get("completion_tokens"))
        try:
            await manager.release((*release, usage.get("requests", 1)))
        except Exception as exc:  # the job's own outcome stands; the call stops counting when
            # its job leaves `doing`
            log.error("could not release the limit", **fields, error=str(exc))


async def _run(context: Any, output: Any, attempt: int, fields: dict[str, Any]) -> dict[str, Any]:
    """Render, call (or answer from the cache) and store; the call's usage for the limit (empty
    when unknown: the call failed)."""
    output_id = output.id
    pool = context.app.connector.pool
    manager: LLMJobsJobManager = context.app.job_manager
    leaves = text_leaves(output.context)
    withhold(output.system_prompt, *leaves)
    try:
        prompt = rendering.render(output.template, output.context)
    except InvalidInput as exc:
        raise PermanentModelError(f"the prompt cannot be rendered: {exc}") from exc
    withhold(prompt)
    began = time.perf_counter()
    schema = output.json_schema if output.format == "json" else None
    messages = build_messages(prompt, output.format, output.system_prompt, schema)
    key = cache_key(output.model, output.format, messages, schema)
    if output.use_cache and await _answer_from_cache(pool, output, attempt, prompt, key, began):
        log.info(
            "completed",
            **fields,
            cache_hit=True,
            duration_ms=int((time.perf_counter() - began) * 1000),
        )
        return {"tokens": 0, "requests": 0}
    try:
        parsed, raw, usage = await ask(output.model, messages, output.format, schema)
    except ModelError as exc:
        exc.prompt = prompt  # stored with the failure by the final-failure middleware
        # a provider's error may quote the prompt: the quote is cut before it is stored or logged
        exc.message = cut_echoes(exc.message, [prompt, output.system_prompt or "", *leaves])
        exc.args = (exc.message,)
        if isinstance(exc, TransientModelError) and exc.status_code == 429:
            await _pause(pool, output.model, exc, fields)
        raise
    requests = usage.pop("requests")
    stored = await manager.complete_output(
        outputs.Answer(
            output_id=output_id,
            attempt=attempt,
            prompt=prompt,
            raw_response=raw,
            parsed_output=parsed,
            cache_key=key,
            **usage,
        )
    )
    duration_ms = int((time.perf_counter() - began) * 1000)
    if stored:
        log.info("completed", **fields, duration_ms=duration_ms, response_length=len(raw))
    else:
        log.warning("stale attempt discarded", **fields, duration_ms=duration_ms)
    known = usage["prompt_tokens"] is not None and usage["completion_tokens"] is not None
    return {
        "tokens": usage["prompt_tokens"] + usage["completion_tokens"] if known else None,
        "completion_tokens": usage["completion_tokens"] if known else None,
        "requests": requests,
    }


async def _pause(pool: Any, model: str, exc: TransientModelError, fields: dict[str, Any]) -> None:
    """A 429: every worker's calls to the model wait (the provider's hint, else a second)."""
    seconds = limits.pause_seconds(exc.retry_after)
    try:
        async with pool.connection() as conn:
            until = await limits_db.pause_model(conn, model, seconds)
    except Exception as db_exc:  # the retry still follows; the pause is a courtesy to the provider
        log.error("could not pause the model", **fields, error=str(db_exc))
        return
    log.warning(
        "model paused after a 429", **fields, pause_s=round(seconds, 3), until=until.isoformat()
    )
