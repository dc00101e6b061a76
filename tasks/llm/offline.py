"""Offline models: deterministic models that need no network, registered as a litellm provider.

Each answers in the format the request asks for (the system message carries the format
instruction), reports token usage like a real provider, and costs 0. They differ the way real
models do, all decided by a hash of the prompt so the same prompt always gets the same answer:

- `offline/echo` repeats the prompt back, at once (the test suite's model).
- `offline/brief` answers in a sentence or two, in tens of milliseconds.
- `offline/verbose` answers at length, in a few hundred milliseconds.
- `offline/flaky` answers in between, but for one json prompt in four its first answer is not
  valid JSON (prose around it), so the worker's re-ask shows; the re-ask gets valid JSON.

Asked for JSON with a JSON Schema (in the format instruction), each answers a value of the schema
made from the prompt's words (tasks.llm.instances); offline/flaky's first answer to one such
prompt in four breaks the schema, and its answer to the re-ask validates.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import time
from typing import Any

from tasks.config import before_litellm_import

before_litellm_import()  # litellm reads its price map and log settings when it is imported

import litellm
from litellm import CustomLLM

from tasks.llm import instances
from tasks.llm.catalog import OFFLINE_MODELS, OFFLINE_NAMES, OFFLINE_PROVIDER
from tasks.llm.formats import INSTRUCTIONS, SCHEMA_MARKER

PROVIDER = OFFLINE_PROVIDER
MODELS = OFFLINE_MODELS
NAMES = OFFLINE_NAMES


# Latency range (ms) per model, picked within it by the prompt's hash.
LATENCY_MS = {"echo": (0, 0), "brief": (20, 80), "verbose": (150, 400), "flaky": (60, 220)}
# One json prompt in FLAKY_EVERY gets an invalid first answer from offline/flaky.
FLAKY_EVERY = 4

_POINTS = (
    "Start from what the reader already knows.",
    "Name the one idea everything else rests on.",
    "Give a concrete example before the general rule.",
    "Say where the idea stops working.",
    "Point to one next step worth taking.",
    "Check the answer against a simple case.",
)


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _fingerprint(prompt: str) -> int:
    return int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12], 16)


def latency_ms(model: str, prompt: str) -> int:
    """How long the model takes on this prompt, in milliseconds (deterministic)."""
    low, high = LATENCY_MS.get(model, (0, 0))
    return low + _fingerprint(f"{model}:{prompt}") % (high - low + 1)


def flaky_json(prompt: str) -> bool:
    """Whether offline/flaky's first json answer to this prompt is invalid."""
    return _fingerprint(prompt) % FLAKY_EVERY == 0


def _summary(words: list[str], limit: int) -> str:
    return " ".join(words[:limit]) + (" …" if len(words) > limit else "")


def _echo(fmt: str, prompt: str) -> str:
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]
    words = prompt.split()
    summary = _summary(words, 40)
    if fmt == "json":
        return json.dumps(
            {"model": "offline/echo", "prompt": prompt, "words": len(words), "digest": digest}
        )
    if fmt == "html":
        return (
            f"<h2>Answer</h2>\n<p>{html.escape(summary)}</p>\n"
            f"<ul><li>words: {len(words)}</li><li>digest: <code>{digest}</code></li></ul>"
        )
    if fmt == "markdown":
        return f"## Answer\n\n{summary}\n\n- **words:** {len(words)}\n- **digest:** `{digest}`\n"
    return f"Echo: {prompt}"


def _brief(fmt: str, prompt: str) -> str:
    topic = _summary(prompt.split(), 8)
    point = _POINTS[_fingerprint(prompt) % len(_POINTS)]
    if fmt == "json":
        return json.dumps({"answer": f"In short: {topic}", "tip": point})
    if fmt == "html":
        return f"<p><strong>In short:</strong> {html.escape(topic)}. {html.escape(point)}</p>"
    if fmt == "markdown":
        return f"**In short:** {topic}. {point}\n"
    return f"In short: {topic}. {point}"


def _points(prompt: str, count: int) -> list[str]:
    start = _fingerprint(prompt) % len(_POINTS)
    return [_POINTS[(start + i) % len(_POINTS)] for i in range(count)]


def _verbose(fmt: str, prompt: str) -> str:
    topic = _summary(prompt.split(), 30)
    points = _points(prompt, 5)
    intro = (
        f"Here is a thorough answer to the request: {topic}. It is worth taking slowly, one "
        "step at a time, because each step builds on the one before it."
    )
    close = "In summary, the points above cover the ground; revisit them with your own example."
    if fmt == "json":
        return json.dumps(
            {"summary": intro, "points": points, "conclusion": close, "confidence": "high"},
            indent=2,
        )
    if fmt == "html":
        items = "".join(f"<li>{html.escape(p)}</li>" for p in points)
        return (
            f"<h2>Overview</h2>\n<p>{html.escape(intro)}</p>\n<h3>Key points</h3>\n"
            f"<ol>{items}</ol>\n<h3>Conclusion</h3>\n<p>{html.escape(close)}</p>"
        )
    if fmt == "markdown":
        items = "\n".join(f"{i}. {p}" for i, p in enumerate(points, 1))
        return f"## Overview\n\n{intro}\n\n### Key points\n\n{items}\n\n### Conclusion\n\n{close}\n"
    body = "\n".join(f"{i}. {p}" for i, p in enumerate(points, 1))
    return f"{intro}\n\n{body}\n\n{close}"


def _flaky(fmt: str, prompt: str, reasked: bool) -> str:
    topic = _summary(prompt.split(), 15)
    points = _points(prompt, 2)
    if fmt == "json":
        value = json.dumps({"answer": topic, "points": points})
        if flaky_json(prompt) and not reasked:
            return f"Sure! Here is the JSON you asked for: {value[:-1]}"  # prose, cut short
        return value
    if fmt == "html":
        items = "".join(f"<li>{html.escape(p)}</li>" for p in points)
        return f"<p>{html.escape(topic)}</p>\n<ul>{items}</ul>"
    if fmt == "markdown":
        return f"### {topic}\n\n" + "\n".join(f"- {p}" for p in points) + "\n"
    return f"{topic}. " + " ".join(points)


def _schema(system: str) -> Any:
    """The JSON Schema the format instruction carries, if any."""
    at = system.find(SCHEMA_MARKER)
    if at < 0:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(system, at + len(SCHEMA_MARKER))
    except (ValueError, RecursionError):
        return None
    return schema if isinstance(schema, dict) else None


def _schema_answer(model: str, schema: Any, prompt: str, reasked: bool) -> str:
    """A value of the schema, from the prompt's words; offline/flaky's first answer to one
    schema prompt in FLAKY_EVERY breaks it (a required property left out, or the like)."""
    value = instances.instance(schema, prompt.split())
    if model == "flaky" and flaky_json(prompt) and not reasked:
        value = instances.broken(schema, value)
    return json.dumps(value, ensure_ascii=False, indent=2 if model == "verbose" else None)


def answer(messages: list[dict[str, Any]], model: str = "echo") -> str:
    """The deterministic answer of offline/<model> to a conversation."""
    system = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
    fmt = next((f for f in ("json", "html", "markdown") if INSTRUCTIONS[f] in system), "text")
    schema = _schema(system) if fmt == "json" else None
    if schema is not None:
        reasked = any(m.get("role") == "assistant" for m in messages)
        return _schema_answer(model, schema, users[0] if users else "", reasked)
    if model == "echo":
        return _echo(fmt, "\n".join(users))
    prompt = users[0] if users else ""  # a re-ask adds turns; the question stays the first
    if model == "brief":
        return _brief(fmt, prompt)
    if model == "verbose":
        return _verbose(fmt, prompt)
    reasked = any(m.get("role") == "assistant" for m in messages)
    return _flaky(fmt, prompt, reasked)


def _prompt(messages: list[dict[str, Any]]) -> str:
    return next((str(m.get("content", "")) for m in messages if m.get("role") == "user"), "")


class OfflineModels(CustomLLM):
    def _respond(self, model: str, messages: list[dict[str, Any]]) -> litellm.ModelResponse:
        content = answer(messages, model)
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
        delay = latency_ms(model, _prompt(messages))
        if delay:
            time.sleep(delay / 1000)
        return self._respond(model, messages)

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
        delay = latency_ms(model, _prompt(messages))
        if delay:
            await asyncio.sleep(delay / 1000)
        return self._respond(model, messages)
