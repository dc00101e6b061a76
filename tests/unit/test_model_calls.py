"""Model calls through litellm: prices and litellm's own callbacks."""

from __future__ import annotations

import asyncio

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger

from tasks import models
from tasks.config import OFFLINE_MODEL

MESSAGES = [{"role": "user", "content": "Explain queues to a beginner"}]


class Recorder(CustomLogger):
    def __init__(self) -> None:
        super().__init__()
        self.successes: list[str] = []

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.successes.append(kwargs.get("model"))


async def _wait_for(condition, timeout: float = 10.0) -> bool:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


@pytest.fixture(autouse=True)
def no_litellm_callbacks(monkeypatch):
    """Every list litellm keeps callbacks in, empty; restored after."""
    for name in models.LITELLM_CALLBACK_LISTS:
        monkeypatch.setattr(litellm, name, [])


async def test_a_configured_litellm_callback_still_sees_every_call(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(litellm, "callbacks", [recorder])
    answer = await models.call_model(OFFLINE_MODEL, MESSAGES)
    assert answer.text
    # (litellm's logging queue may still hold an earlier test's call)
    assert await _wait_for(lambda: any(m.endswith("echo") for m in recorder.successes)), (
        "litellm's callback was never called"
    )


async def test_without_litellm_callbacks_the_call_skips_litellm_logging(monkeypatch):
    seen: list[object] = []
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    monkeypatch.setattr(GLOBAL_LOGGING_WORKER, "enqueue", seen.append)
    await asyncio.sleep(0.5)  # what earlier calls still had to log
    for coroutine in seen:
        coroutine.close()
    seen.clear()
    answer = await models.call_model(OFFLINE_MODEL, MESSAGES)
    assert answer.text and answer.cost == 0.0
    await asyncio.sleep(0.2)  # litellm hands its logging to a task of its own
    assert seen == []
    # The same call with litellm's logging left on does hand it a payload to log.
    monkeypatch.setattr(models, "_unlogged_call", None)
    await models.call_model(OFFLINE_MODEL, MESSAGES)
    assert await _wait_for(lambda: seen, timeout=2.0)
    for coroutine in seen:
        coroutine.close()


def test_configured_prices_are_parsed_once_per_value(monkeypatch):
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", "openai/a=1/2, openai/b=0/0")
    assert models.price_overrides() == {"openai/a": (1e-6, 2e-6), "openai/b": (0.0, 0.0)}
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", "openai/a=3/4")
    assert models.price_overrides() == {"openai/a": (3e-6, 4e-6)}
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", "openai/a=three/4")
    with pytest.raises(models.InvalidInput, match="bad entry"):
        models.price_overrides()


def test_an_unknown_model_has_no_price():
    assert models.estimate_cost("openai/no-such-model-anywhere", 10, 10) is None
    assert models.estimate_cost("gpt-4o-mini", 1000, 1000) > 0


async def test_an_unpriced_model_costs_unknown_and_a_configured_price_applies(
    provider, monkeypatch
):
    from tests.support.provider import ok

    provider.push(ok("an answer of five words"), ok("an answer of five words"))
    unknown = await models.call_model("openai/no-such-model-anywhere", MESSAGES)
    assert unknown.prompt_tokens and unknown.cost is None
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", "openai/no-such-model-anywhere=1000/2000")
    priced = await models.call_model("openai/no-such-model-anywhere", MESSAGES)
    expected = (priced.prompt_tokens * 1000 + priced.completion_tokens * 2000) / 1e6
    assert priced.cost == pytest.approx(expected)
