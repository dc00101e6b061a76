"""Worker middleware: the final word on an LLM job's failure.

Procrastinate has no death handler; this middleware sees every exception of the LLM job before
procrastinate decides to retry it. When a retry will follow, the output goes back to pending with
the error; when none will, the output is marked failed with a readable message. Either way the
exception goes on to procrastinate, which records the job's own status.
"""

from __future__ import annotations

import asyncio
from typing import Any

from procrastinate import exceptions as procrastinate_exceptions

from db import outputs
from tasks.config import LLM_TASK
from tasks.llm.errors import ModelError
from tasks.logs import get_logger, redact
from tasks.worker.retry import will_retry

log = get_logger("llmjobs.worker")


def describe(exc: BaseException) -> str:
    """A readable one-line message for a failure."""
    if isinstance(exc, ModelError):
        return redact(exc.message)
    if isinstance(exc, asyncio.CancelledError | procrastinate_exceptions.JobAborted):
        return "the job was interrupted (worker stopped or job cancelled)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


async def final_failure(call_next: Any, context: Any, worker: Any) -> Any:
    job = context.job
    if job.task_name != LLM_TASK:
        return await call_next()
    try:
        return await call_next()
    except BaseException as exc:
        output_id = job.task_kwargs.get("output_id")
        attempt = job.attempts + 1
        message = describe(exc)
        retrying = will_retry(exc, job.attempts)
        try:
            async with context.app.connector.pool.connection() as conn:
                if retrying:
                    await outputs.retry_output(
                        conn,
                        output_id,
                        attempt=attempt,
                        error_message=message,
                        prompt=getattr(exc, "prompt", None),
                    )
                else:
                    await outputs.fail_output(
                        conn,
                        output_id,
                        attempt=attempt,
                        error_message=message,
                        raw_response=getattr(exc, "raw_response", None),
                        prompt=getattr(exc, "prompt", None),
                        schema_errors=[
                            {"path": e.path, "message": e.message}
                            for e in getattr(exc, "schema_errors", None) or []
                        ],
                    )
        except Exception as db_exc:  # the job's own status still gets recorded by procrastinate
            log.error("could not record the failure", output_id=output_id, error=str(db_exc))
        if not retrying:
            log.error(
                "failed",
                job_id=job.id,
                output_id=output_id,
                attempt=attempt,
                error=message,
            )
        raise
