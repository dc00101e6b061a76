"""What tasks/llm/calls.py takes from litellm beyond its public API (its fast paths), checked
against the installed litellm: a failure here names what a litellm release changed. With a
fast path gone, the worker falls back to litellm's plain behaviour with one WARNING; with
LLMJOBS_LITELLM_FAST_PATH=0 none is used and calls still work."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tasks import logs
from tasks.config import OFFLINE_MODEL, get_settings
from tasks.llm import calls

MESSAGES = [{"role": "user", "content": "Explain sets"}]


@pytest.fixture
def fast_path_off(monkeypatch):
    monkeypatch.setenv("LLMJOBS_LITELLM_FAST_PATH", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_litellm_still_has_what_the_fast_paths_use():
    import litellm.main

    assert calls._unlogged_call is not None, (
        "litellm._internal_context.internal_sub_call is gone: litellm logs every call again"
    )
    assert callable(getattr(litellm.main, "completion", None)), "litellm.main.completion is gone"
    loop = asyncio.new_event_loop()
    try:
        assert hasattr(loop, "_default_executor"), "asyncio loops have no _default_executor"
    finally:
        loop.close()


async def test_acompletion_hands_its_setup_to_the_executor_in_the_shape_we_recognise():
    seen = []
    loop = asyncio.get_running_loop()
    original = loop.run_in_executor

    def spy(executor, fn, *args):
        seen.append(calls._is_litellm_setup(fn) and not args)
        return original(executor, fn, *args)

    loop.run_in_executor = spy  # type: ignore[method-assign]
    try:
        await calls.call_model(OFFLINE_MODEL, MESSAGES)
    finally:
        del loop.run_in_executor
    assert any(seen), "litellm.acompletion no longer submits partial(ctx.run, partial(completion))"


async def test_a_response_carries_the_cost_litellm_computed():
    import litellm

    response = await litellm.acompletion(
        model="offline/echo",
        messages=MESSAGES,
        input_cost_per_token=1e-6,
        output_cost_per_token=2e-6,
        max_retries=0,
        timeout=5,
    )
    hidden = getattr(response, "_hidden_params", None)
    assert isinstance(hidden, dict), "litellm responses have no _hidden_params"
    usage = response.usage
    expected = usage.prompt_tokens * 1e-6 + usage.completion_tokens * 2e-6
    assert hidden.get("response_cost") == pytest.approx(expected), (
        "litellm no longer prices a call with the per-token prices it is given"
    )


async def test_a_missing_fast_path_is_logged_once_and_litellm_logs_as_usual(monkeypatch):
    import structlog

    monkeypatch.setattr(calls, "_unlogged_call", None)
    logs.forget_warnings()
    with structlog.testing.capture_logs() as logged:
        for _ in range(3):
            answer = await calls.call_model(OFFLINE_MODEL, MESSAGES)
            assert answer.text and answer.cost == 0.0
    warnings = [e for e in logged if "fast path unavailable" in e["event"]]
    assert len(warnings) == 1
    assert (warnings[0]["log_level"], warnings[0]["fast_path"]) == ("warning", "internal_sub_call")


async def test_with_the_fast_paths_off_calls_use_litellm_as_documented(fast_path_off):
    loop = asyncio.get_running_loop()
    before = loop._default_executor  # type: ignore[attr-defined]
    calls.install_call_executor(loop)
    assert loop._default_executor is before  # type: ignore[attr-defined]
    assert isinstance(calls._quiet_logging(False), contextlib.nullcontext)
    answer = await calls.call_model(OFFLINE_MODEL, MESSAGES)
    assert answer.text and answer.cost == 0.0 and answer.prompt_tokens


async def test_with_the_fast_paths_off_a_priced_model_costs_the_same(
    fast_path_off, monkeypatch, provider
):
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", "openai/priced=1000/2000")
    answer = await calls.call_model("openai/priced", MESSAGES)
    expected = answer.prompt_tokens * 1e-3 + answer.completion_tokens * 2e-3
    assert answer.cost == pytest.approx(expected)
