"""`offline/echo`: a deterministic model that needs no network, registered as a litellm provider.

It answers in the format the request asks for (the system message carries the format
instruction): valid JSON for json, real Markdown, a real HTML fragment, plain text otherwise, and
reports token usage like a real provider. Its cost is 0.
"""

from __future__ import annotations

import hashlib
import html
import json
from typing import Any

import litellm
from litellm import CustomLLM

from tasks.formats import INSTRUCTIONS

PROVIDER = "offline"
MODELS = ("echo",)


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def answer(messages: list[dict[str, Any]]) -> str:
    """The deterministic answer to a conversation."""
    system = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    prompt = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]
    words = prompt.split()
    summary = " ".join(words[:40]) + (" …" if len(words) > 40 else "")
    if INSTRUCTIONS["json"] in system:
        return json.dumps(
            {"model": "offline/echo", "prompt": prompt, "words": len(words), "digest": digest}
        )
    if INSTRUCTIONS["html"] in system:
        return (
            f"<h2>Answer</h2>\n<p>{html.escape(summary)}</p>\n"
            f"<ul><li>words: {len(words)}</li><li>digest: <code>{digest}</code></li></ul>"
        )
    if INSTRUCTIONS["markdown"] in system:
        return f"## Answer\n\n{summary}\n\n- **words:** {len(words)}\n- **digest:** `{digest}`\n"
    return f"Echo: {prompt}"


class OfflineEcho(CustomLLM):
    def _respond(self, model: str, messages: list[dict[str, Any]]) -> litellm.ModelResponse:
        content = answer(messages)
        prompt_tokens = sum(_tokens(str(m.get("content", ""))) for m in messages)
        completion_tokens = _tokens(content)
        return litellm.ModelResponse(
            model=f"{PROVIDER}/{model}",
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        )

    def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
        return self._respond(model, messages)

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
        return self._respond(model, messages)
