from __future__ import annotations

import asyncio

import httpx
import litellm
import pytest
from procrastinate.jobs import Job

from tasks.llm.calls import retry_after, translate_error
from tasks.llm.errors import PermanentModelError, TransientModelError
from tasks.worker.retry import LLMRetryStrategy, compute_backoff, is_transient


def _low(a: float, b: float) -> float:
    return a


def _high(a: float, b: float) -> float:
    return b


@pytest.mark.parametrize(
    ("retries", "uniform", "retry_after", "expected"),
    [
        (0, _low, None, 2.5),
        (0, _high, None, 7.5),
        (1, _low, None, 5.0),
        (1, _high, None, 15.0),
        (2, _low, None, 10.0),
        (3, _high, None, 60.0),
        (4, _low, None, 40.0),
        (4, _high, None, 120.0),
        (5, _high, None, 240.0),
        (6, _low, None, 160.0),
        (6, _high, None, 300.0),  # capped
        (40, _high, None, 300.0),  # capped, no overflow
        (0, _low, 30.0, 30.0),  # Retry-After honoured when longer
        (3, _high, 1.0, 60.0),  # ... but never shortens the backoff
        (0, _low, 10_000.0, 300.0),  # ... and is still capped
    ],
)
def test_backoff_table(retries, uniform, retry_after, expected):
    assert compute_backoff(retries, retry_after=retry_after, uniform=uniform) == pytest.approx(
        expected
    )


def test_backoff_jitter_spreads_within_bounds():
    waits = {round(compute_backoff(2), 6) for _ in range(200)}
    assert len(waits) > 100
    assert all(10.0 <= w <= 30.0 for w in waits)


def _request() -> httpx.Request:
    return httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")


def _litellm_error(cls, **extra):
    return cls(message="m", model="openai/x", llm_provider="openai", **extra)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_litellm_error(litellm.RateLimitError), TransientModelError),
        (_litellm_error(litellm.Timeout), TransientModelError),
        (_litellm_error(litellm.InternalServerError), TransientModelError),
        (_litellm_error(litellm.ServiceUnavailableError), TransientModelError),
        (
            litellm.APIConnectionError(message="m", model="x", llm_provider="openai"),
            TransientModelError,
        ),
        (_litellm_error(litellm.BadRequestError), PermanentModelError),
        (_litellm_error(litellm.AuthenticationError), PermanentModelError),
        (
            _litellm_error(
                litellm.PermissionDeniedError, response=httpx.Response(403, request=_request())
            ),
            PermanentModelError,
        ),
        (_litellm_error(litellm.NotFoundError), PermanentModelError),
        (_litellm_error(litellm.ContextWindowExceededError), PermanentModelError),
        (_litellm_error(litellm.ContentPolicyViolationError), PermanentModelError),
        # an answer with status 200 that could not be read (not JSON, cut off)
        (_litellm_error(litellm.APIError, status_code=200), TransientModelError),
        (_litellm_error(litellm.APIError, status_code=400), PermanentModelError),
    ],
)
def test_translate_error_classifies(exc, kind):
    translated = translate_error(exc)
    assert type(translated) is kind
    assert type(exc).__name__ in translated.message


def test_retry_after_header_is_read():
    response = httpx.Response(429, headers={"retry-after": "12"}, request=_request())
    exc = litellm.RateLimitError(message="m", model="x", llm_provider="openai", response=response)
    assert translate_error(exc).retry_after == 12.0


def _job(attempts: int) -> Job:
    return Job(
        id=1,
        queue="default",
        lock=None,
        queueing_lock=None,
        task_name="llm_job",
        task_kwargs={"output_id": 9},
        attempts=attempts,
    )


def test_strategy_retries_transient_until_five_retries(settings_env):
    settings_env(RETRY_SCALE="1")
    strategy = LLMRetryStrategy()
    transient = TransientModelError("503")
    for attempts in range(5):
        decision = strategy.get_retry_decision(exception=transient, job=_job(attempts))
        assert decision is not None and decision.retry_at is not None
    assert strategy.get_retry_decision(exception=transient, job=_job(5)) is None


def test_strategy_never_retries_permanent_or_unknown_errors():
    strategy = LLMRetryStrategy()
    for exc in (PermanentModelError("401"), ValueError("bug"), KeyError("x")):
        assert strategy.get_retry_decision(exception=exc, job=_job(0)) is None


def test_interrupted_jobs_are_transient():
    assert is_transient(asyncio.CancelledError())
    assert not is_transient(RuntimeError())


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "2.5"}, 2.5),
        ({"x-ratelimit-reset-requests": "1m2.5s", "x-ratelimit-reset-tokens": "20ms"}, 62.5),
        ({"x-ratelimit-reset-tokens": "6m0s"}, 360.0),
        ({"llm_provider-retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "1e400"}, None),
        ({"x-ratelimit-reset-requests": "1s1s1s" * 20}, None),
        ({"x-ratelimit-reset-requests": "soon"}, None),
        ({}, None),
    ],
)
def test_a_providers_wait_is_read_from_its_headers(headers, seconds):
    assert retry_after(httpx.Headers(headers)) == seconds
