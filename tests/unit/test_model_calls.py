"""Model calls through litellm: prices and litellm's own callbacks."""

from __future__ import annotations

import asyncio

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger

from tasks.config import OFFLINE_MODEL, SettingsError
from tasks.llm import calls
from tasks.llm.errors import PermanentModelError, TransientModelError

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
    for name in calls.LITELLM_CALLBACK_LISTS:
        monkeypatch.setattr(litellm, name, [])


async def test_a_configured_litellm_callback_still_sees_every_call(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(litellm, "callbacks", [recorder])
    answer = await calls.call_model(OFFLINE_MODEL, MESSAGES)
    assert answer.text
    # (litellm's logging queue may still hold an earlier test's call)
    assert await _wait_for(lambda: any(m.endswith("echo") for m in recorder.successes)), (
        "litellm's callback was never called"
    )


@pytest.mark.fast_path
async def test_without_litellm_callbacks_the_call_skips_litellm_logging(monkeypatch):
    seen: list[object] = []
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    monkeypatch.setattr(GLOBAL_LOGGING_WORKER, "enqueue", seen.append)
    await asyncio.sleep(0.5)  # what earlier calls still had to log
    for coroutine in seen:
        coroutine.close()
    seen.clear()
    answer = await calls.call_model(OFFLINE_MODEL, MESSAGES)
    assert answer.text and answer.cost == 0.0
    await asyncio.sleep(0.2)  # litellm hands its logging to a task of its own
    assert seen == []
    # The same call with litellm's logging left on does hand it a payload to log.
    monkeypatch.setattr(calls, "_unlogged_call", None)
    await calls.call_model(OFFLINE_MODEL, MESSAGES)
    assert await _wait_for(lambda: seen, timeout=2.0)
    for coroutine in seen:
        coroutine.close()


def test_configured_prices_come_from_the_settings(monkeypatch):
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", "openai/a=1/2, openai/b=0/0")
    assert calls.price_overrides() == {"openai/a": (1e-6, 2e-6), "openai/b": (0.0, 0.0)}
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", "openai/a=3/4")
    assert calls.price_overrides() == {"openai/a": (3e-6, 4e-6)}
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", "openai/a=three/4")
    with pytest.raises(SettingsError, match="LLMJOBS_MODEL_PRICES"):
        calls.price_overrides()


def test_an_unknown_model_has_no_price():
    assert calls.estimate_cost("openai/no-such-model-anywhere", 10, 10) is None
    assert calls.estimate_cost("gpt-4o-mini", 1000, 1000) > 0


async def test_an_unpriced_model_costs_unknown_and_a_configured_price_applies(
    provider, monkeypatch
):
    from tests.support.provider import ok

    provider.push(ok("an answer of five words"), ok("an answer of five words"))
    unknown = await calls.call_model("openai/no-such-model-anywhere", MESSAGES)
    assert unknown.prompt_tokens and unknown.cost is None
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", "openai/no-such-model-anywhere=1000/2000")
    priced = await calls.call_model("openai/no-such-model-anywhere", MESSAGES)
    expected = (priced.prompt_tokens * 1000 + priced.completion_tokens * 2000) / 1e6
    assert priced.cost == pytest.approx(expected)


# --- an OpenAI-compatible server, through either client ----------------------------------------


@pytest.fixture(params=["http", "sdk"])
def client(request, settings_env) -> str:
    """LLMJOBS_OPENAI_COMPATIBLE_CLIENT: litellm's HTTP handler (the default) or the openai SDK."""
    settings_env(OPENAI_COMPATIBLE_CLIENT=request.param)
    return request.param


async def test_either_client_sends_the_server_the_same_request(provider, client):
    from tests.support.provider import ok

    provider.push(ok("an answer of five words"))
    answer = await calls.call_model("openai/served-name", MESSAGES, timeout=10)
    assert answer.text == "an answer of five words"
    assert answer.prompt_tokens and answer.completion_tokens == 5
    assert provider.requests == [{"model": "served-name", "messages": MESSAGES}]
    assert provider.headers[0]["authorization"] == "Bearer sk-test-secret-key-0123456789"
    # the openai SDK announces itself; litellm's HTTP handler sends the request on its own
    assert ("x-stainless-lang" in provider.headers[0]) == (client == "sdk")


async def test_either_client_keeps_litellm_price_for_an_openai_model(provider, client):
    from tests.support.provider import ok

    provider.push(ok("an answer of five words"))
    answer = await calls.call_model("openai/gpt-4o-mini", MESSAGES, timeout=10)
    expected = calls.estimate_cost("gpt-4o-mini", answer.prompt_tokens, answer.completion_tokens)
    assert expected and answer.cost == pytest.approx(expected)


def _failures():
    from tests.support.provider import Step, error

    return [
        (error(429, "slow down", retry_after="7"), TransientModelError, 429, "slow down"),
        (error(500, "the server broke"), TransientModelError, 500, "the server broke"),
        (error(400, "no such parameter"), PermanentModelError, 400, "no such parameter"),
        (error(401, "wrong key"), PermanentModelError, 401, "wrong key"),
        (Step(raw_body=b"<html>not json"), TransientModelError, None, ""),
        (Step(drop=True), TransientModelError, None, ""),
    ]


@pytest.mark.parametrize("case", range(len(_failures())))
async def test_either_client_classifies_a_failure_alike_with_the_server_message(
    provider, client, case
):
    step, kind, status, text = _failures()[case]
    provider.push(step)
    with pytest.raises(kind) as failure:
        await calls.call_model("openai/served-name", MESSAGES, timeout=10)
    assert failure.value.status_code in ((status,) if status else (None, 500))
    assert text in str(failure.value)
    assert '{"error"' not in str(failure.value)  # the server's message, not its JSON body
    assert ("OpenAI-compatible server - " in str(failure.value)) == (client == "http")
    if status == 429:
        assert failure.value.retry_after == 7.0


async def test_either_client_times_out_as_a_transient_failure(provider, client):
    from tests.support.provider import ok

    provider.push(ok("too late", delay=1.5))
    with pytest.raises(TransientModelError) as failure:
        await calls.call_model("openai/served-name", MESSAGES, timeout=0.3)
    assert failure.value.status_code == 408


@pytest.mark.fast_path
async def test_without_callbacks_litellm_is_not_asked_to_explain_a_zero_cost(monkeypatch):
    from litellm.litellm_core_utils import litellm_logging

    searched: list[object] = []
    original = litellm_logging.pricing_entry_for_cost_calc

    def spy(*args, **kwargs):
        searched.append(kwargs.get("model"))
        return original(*args, **kwargs)

    monkeypatch.setattr(litellm_logging, "pricing_entry_for_cost_calc", spy)
    answer = await calls.call_model(OFFLINE_MODEL, MESSAGES)
    assert answer.cost == 0.0 and searched == []
    # Priced at zero, the same call has litellm search its price map for the reason.
    monkeypatch.setattr(calls, "_NOMINAL", calls._FREE)
    answer = await calls.call_model(OFFLINE_MODEL, MESSAGES)
    assert answer.cost == 0.0 and searched


async def test_a_configured_litellm_callback_sees_the_offline_model_cost_nothing(monkeypatch):
    costs: list[object] = []

    class CostRecorder(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            if kwargs.get("model", "").endswith("echo"):
                costs.append(kwargs.get("response_cost"))

    monkeypatch.setattr(litellm, "callbacks", [CostRecorder()])
    assert (await calls.call_model(OFFLINE_MODEL, MESSAGES)).cost == 0.0
    assert await _wait_for(lambda: costs), "litellm's callback was never called"
    assert costs[0] == 0
