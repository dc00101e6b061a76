"""The retry policy: which failures are transient, how long to wait, and procrastinate's hook.

wait = min(max(base × 2^retries × uniform(0.5, 1.5), Retry-After), cap), at most `max_retries`
retries, for transient errors only (429, 408 and timeouts, connection errors, 5xx, worker
shutdown). Everything else fails at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import psycopg
from procrastinate import exceptions as procrastinate_exceptions
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from tasks.config import get_settings
from tasks.llm.errors import TransientModelError
from tasks.logs import get_logger

log = get_logger("llmjobs.retry")


def compute_backoff(
    retries: int,
    *,
    base: float = 5.0,
    cap: float = 300.0,
    retry_after: float | None = None,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait before retry number retries + 1 (retries = retries done so far)."""
    exponent = min(retries, 32)  # 2**32 × base is far past any cap; keeps floats finite
    wait = base * 2**exponent * uniform(0.5, 1.5)
    if retry_after is not None and retry_after > 0:
        wait = max(wait, retry_after)
    return min(wait, cap)


def is_transient(exc: BaseException) -> bool:
    """Whether a failure of the LLM job deserves another attempt."""
    return isinstance(
        exc,
        TransientModelError
        | psycopg.OperationalError
        | asyncio.CancelledError
        | procrastinate_exceptions.JobAborted,
    )


def will_retry(exc: BaseException, retries_done: int) -> bool:
    """Whether the queue will run the job again after this failure."""
    return is_transient(exc) and retries_done < get_settings().max_retries


class LLMRetryStrategy(BaseRetryStrategy):
    """Exponential backoff with jitter and a cap, honouring Retry-After, for transient errors."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if not will_retry(exception, job.attempts):
            return None
        settings = get_settings()
        if isinstance(exception, asyncio.CancelledError | procrastinate_exceptions.JobAborted):
            wait = 0.0  # interrupted by a worker shutdown: run again as soon as a worker is free
        else:
            wait = compute_backoff(
                job.attempts,
                base=settings.retry_base,
                cap=settings.retry_cap,
                retry_after=getattr(exception, "retry_after", None),
            )
        wait *= settings.retry_scale
        log.info(
            "retry scheduled",
            job_id=job.id,
            output_id=job.task_kwargs.get("output_id"),
            attempt=job.attempts + 1,
            retry_in_s=round(wait, 3),
            error=str(exception) or type(exception).__name__,
        )
        return RetryDecision(retry_in={"seconds": wait})
