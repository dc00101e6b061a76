"""The LLM job: render, call the model, parse, store.

Run by `procrastinate --app=tasks.app worker`.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from db import batches, outputs
from tasks.config import LLM_TASK, get_settings
from tasks.errors import InvalidInput
from tasks.llm import calls, formats, rendering
from tasks.llm.errors import ModelError, PermanentModelError
from tasks.logs import get_logger
from tasks.worker.app import LLMJobsJobManager, app
from tasks.worker.retry import LLMRetryStrategy

log = get_logger("llmjobs.worker")


class AnswerNotParsed(PermanentModelError):
    """The model's answer never fitted the format; the last raw answer is kept."""

    def __init__(self, message: str, raw_response: str):
        super().__init__(message)
        self.raw_response = raw_response


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
    parse. Returns (parsed, raw, usage figures)."""
    settings = get_settings()
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0, "latency_ms": 0}
    conversation = list(messages)
    for reask in range(settings.json_reasks + 1):
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
                raise AnswerNotParsed(str(exc), raw) from exc
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
    pool = context.app.connector.pool
    # the worker's writes to outputs, coalesced across its jobs (LLMJobsApp's job manager)
    manager: LLMJobsJobManager = context.app.job_manager
    output = await manager.start_attempt(job.id, output_id, attempt)
    if output is None:
        log.info(
            "skipped",
            job_id=job.id,
            output_id=output_id,
            reason="output final, gone, or a newer attempt runs",
        )
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
        return
    try:
        parsed, raw, usage = await ask(output.model, messages, output.format)
    except ModelError as exc:
        exc.prompt = prompt  # stored with the failure by the final-failure middleware
        raise
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
