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
from tasks.llm import calls, formats, rendering
from tasks.llm.errors import ModelError, PermanentModelError, TransientModelError
from tasks.logs import get_logger
from tasks.worker.app import LLMJobsJobManager, app
from tasks.worker.retry import LLMRetryStrategy

log = get_logger("llmjobs.worker")


class AnswerNotParsed(PermanentModelError):
    """The model's answer never fitted the format; the last raw answer is kept."""

    def __init__(self, message: str, raw_response: str, requests: int = 1):
        super().__init__(message)
        self.raw_response = raw_response
        self.requests = requests


def build_messages(prompt: str, fmt: str, system_prompt: str | None) -> list[dict[str, str]]:
    """The conversation sent to the model: agent's system prompt and format instruction, prompt."""
    system = "\n\n".join(p for p in (system_prompt or "", formats.INSTRUCTIONS[fmt]) if p)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return messages


def cap(text: str, limit: int) -> str:
    """text, cut at limit characters with a note saying so."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[truncated: the answer had {len(text)} characters, {limit} kept]"


async def ask(model: str, messages: list[dict[str, str]], fmt: str) -> tuple[Any, str, dict]:
    """Call the model, re-asking (at most LLMJOBS_JSON_REASKS times) while a json answer does not
    parse. Returns (parsed, raw, usage figures); `requests` counts the calls made, also on the
    AnswerNotParsed raised."""
    settings = get_settings()
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0, "latency_ms": 0}
    conversation = list(messages)
    for reask in range(settings.json_reasks + 1):
        usage["requests"] = reask + 1
        answer = await calls.call_model(model, conversation)
        for key in ("prompt_tokens", "completion_tokens", "cost"):
            value = getattr(answer, key)
            usage[key] = None if value is None or usage[key] is None else usage[key] + value
        usage["latency_ms"] += answer.latency_ms
        raw = cap(answer.text, settings.max_response_chars)
        if fmt != "json" and not raw.strip():
            raise PermanentModelError("the model returned an empty answer")
        try:
            return formats.parse(fmt, raw), raw, usage
        except formats.ParseError as exc:
            if reask == settings.json_reasks:
                raise AnswerNotParsed(str(exc), raw, requests=reask + 1) from exc
            log.info("answer re-asked", model=model, reask=reask + 1, error=str(exc))
            conversation = [
                *messages,
                {"role": "assistant", "content": answer.text},
                {
                    "role": "user",
                    "content": f"That was not valid JSON ({exc}). " + formats.INSTRUCTIONS["json"],
                },
            ]
    raise AssertionError("unreachable")


def cache_key(model: str, fmt: str, messages: list[dict[str, str]]) -> str:
    """What identifies a question for the response cache: model, format and the exact messages
    (system prompt and rendered prompt)."""
    payload = json.dumps([model, fmt, messages], ensure_ascii=False, separators=(",", ":"))
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
    try:
        prompt = rendering.render(output.template, output.context)
    except InvalidInput as exc:
        raise PermanentModelError(f"the prompt cannot be rendered: {exc}") from exc
    began = time.perf_counter()
    messages = build_messages(prompt, output.format, output.system_prompt)
    key = cache_key(output.model, output.format, messages)
    if output.use_cache and await _answer_from_cache(pool, output, attempt, prompt, key, began):
        log.info(
            "completed",
            **fields,
            cache_hit=True,
            duration_ms=int((time.perf_counter() - began) * 1000),
        )
        return {"tokens": 0, "requests": 0}
    try:
        parsed, raw, usage = await ask(output.model, messages, output.format)
    except ModelError as exc:
        exc.prompt = prompt  # stored with the failure by the final-failure middleware
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
