"""A litellm provider that notes which thread runs litellm's synchronous half of each call."""

from __future__ import annotations

import asyncio
import threading

import litellm
from litellm import CustomLLM


class SetupRecorder(CustomLLM):
    """A provider that notes the thread of litellm's synchronous half: litellm calls a custom
    provider's `acompletion` in that half and awaits what it returns."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.setup_threads: list[int] = []
        self.pool_threads: list[int] = []

    def acompletion(self, model, messages, *args, **kwargs):  # type: ignore[override]
        self.setup_threads.append(threading.get_ident())
        if self.fail:
            raise ValueError("the provider refused the request")
        return self._answer(model)

    async def _answer(self, model: str) -> litellm.ModelResponse:
        # Work the call itself gives the default executor, as a DNS lookup would.
        loop = asyncio.get_running_loop()
        self.pool_threads.append(await loop.run_in_executor(None, threading.get_ident))
        return litellm.ModelResponse(
            model=model,
            choices=[{"index": 0, "message": {"role": "assistant", "content": "recorded"}}],
            usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        )
