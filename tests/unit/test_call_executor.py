"""The worker's executor: litellm's synchronous half of a call runs in the event loop's thread for
providers whose half does no I/O, and everything else still runs on the pool's threads."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger

from tasks.llm import calls
from tasks.llm.errors import ModelError
from tests.support.setup_recorder import SetupRecorder

MESSAGES = [{"role": "user", "content": "Explain queues to a beginner"}]


@pytest.fixture(autouse=True)
def no_litellm_callbacks(monkeypatch):
    for name in calls.LITELLM_CALLBACK_LISTS:
        monkeypatch.setattr(litellm, name, [])


@pytest.fixture
def recorder():
    handler = SetupRecorder()
    calls.register_provider("recorder", handler)
    yield handler
    calls.unregister_provider("recorder")


def _call(install: bool, model: str = "recorder/any") -> tuple[calls.ModelAnswer, int]:
    """call_model in a fresh event loop; (answer, the loop's thread)."""

    async def main() -> tuple[calls.ModelAnswer, int]:
        if install:
            calls.install_call_executor(asyncio.get_running_loop())
        return await calls.call_model(model, MESSAGES), threading.get_ident()

    return asyncio.run(main())


@pytest.mark.fast_path
def test_under_the_worker_executor_litellms_setup_runs_in_the_loop_thread(recorder):
    answer, loop_thread = _call(install=True)
    assert answer.text == "recorded"
    assert recorder.setup_threads == [loop_thread]


def test_without_it_the_setup_runs_on_a_pool_thread(recorder):
    answer, loop_thread = _call(install=False)
    assert answer.text == "recorded"
    assert len(recorder.setup_threads) == 1 and recorder.setup_threads[0] != loop_thread


def test_other_work_given_to_the_executor_still_runs_on_its_threads(recorder):
    _, loop_thread = _call(install=True)
    assert recorder.pool_threads and recorder.pool_threads[0] != loop_thread

    async def outside_a_call() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        calls.install_call_executor(loop)
        by_executor = await loop.run_in_executor(None, threading.get_ident)
        return by_executor, await asyncio.to_thread(threading.get_ident), threading.get_ident()

    by_executor, by_to_thread, here = asyncio.run(outside_a_call())
    assert by_executor != here and by_to_thread != here


def test_with_a_litellm_callback_configured_the_setup_keeps_the_pool(recorder, monkeypatch):
    monkeypatch.setattr(litellm, "callbacks", [CustomLogger()])
    _, loop_thread = _call(install=True)
    assert len(recorder.setup_threads) == 1 and recorder.setup_threads[0] != loop_thread


def test_a_failure_in_the_setup_reaches_the_caller_as_it_does_from_a_thread(recorder):
    recorder.fail = True
    errors = []
    for install in (True, False):
        with pytest.raises(ModelError) as caught:
            _call(install=install)
        errors.append((type(caught.value), str(caught.value)))
    assert errors[0] == errors[1]
    assert "the provider refused the request" in errors[0][1]
    assert len(recorder.setup_threads) == 2


@pytest.mark.fast_path
def test_installing_replaces_the_default_pool_once():
    async def main() -> tuple[object, object, object, bool]:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, int)  # asyncio makes its own default pool
        previous = loop._default_executor
        calls.install_call_executor(loop)
        first = loop._default_executor
        calls.install_call_executor(loop)
        return previous, first, loop._default_executor, previous._shutdown

    previous, first, second, previous_shut = asyncio.run(main())
    assert isinstance(previous, ThreadPoolExecutor)
    assert not isinstance(previous, calls.CallExecutor)
    assert isinstance(first, calls.CallExecutor) and second is first
    assert previous_shut, "the replaced pool was left running"


@pytest.mark.parametrize(
    ("model", "in_loop_thread"),
    [
        ("offline/echo", True),
        ("openai/llama3", True),
        ("gpt-4o-mini", True),
        ("anthropic/claude-3-5-haiku-latest", True),
        ("ollama/llama3.1", False),  # may ask its server about the model
        ("bedrock/anthropic.claude-3-haiku-20240307-v1:0", False),  # may fetch credentials
        ("vertex_ai/gemini-1.5-pro", False),
        ("no-such-model-anywhere", False),
    ],
)
def test_only_providers_whose_setup_does_no_io_leave_the_pool(model, in_loop_thread):
    assert calls._setup_is_cpu_only(model) is in_loop_thread
