"""Output formats: what each asks of the model and how its answer is parsed and stored."""

from __future__ import annotations

import json
import re
from typing import Any

import nh3

from tasks.llm.rendering import MAX_CONTEXT_DEPTH, NESTED_TOO_DEEPLY, nesting

FORMATS = ("text", "json", "markdown", "html")

INSTRUCTIONS = {
    "text": "",
    "json": "Answer with one valid JSON value and nothing else: no prose, no code fences.",
    "markdown": "Answer in Markdown.",
    "html": "Answer with an HTML fragment (no <html>, <head> or <body> tags).",
}

# What a json answer with a JSON Schema is asked for when the model cannot take the schema as its
# response format (and, beside that format, when it can): the json instruction, then the schema.
SCHEMA_MARKER = "It must validate against this JSON Schema: "


def instruction(fmt: str, json_schema: dict[str, Any] | None = None) -> str:
    """The format instruction of the system message; with a schema, the schema in it."""
    if json_schema is None:
        return INSTRUCTIONS[fmt]
    compact = json.dumps(json_schema, ensure_ascii=False, separators=(",", ":"))
    return f"{INSTRUCTIONS['json']} {SCHEMA_MARKER}{compact}"


_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


class ParseError(ValueError):
    """The model's answer does not fit the requested format."""


def parse(fmt: str, raw: str) -> Any:
    """The stored form of an answer: text and markdown as they are, JSON decoded (a single code
    fence around it is tolerated), HTML sanitized. Raises ParseError for invalid JSON."""
    if fmt == "json":
        fenced = _FENCE.match(raw)
        body = fenced.group(1) if fenced else raw
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ParseError(f"the answer is not valid JSON: {exc}") from exc
        except RecursionError:
            value = None
            depth = MAX_CONTEXT_DEPTH + 1
        else:
            depth = nesting(value)
        # Stored answers are served as JSON: the same bound as a context keeps them servable.
        if depth > MAX_CONTEXT_DEPTH:
            raise ParseError(f"the answer {NESTED_TOO_DEEPLY}")
        return value
    if fmt == "html":
        return sanitize_html(raw)
    return raw


def sanitize_html(html: str) -> str:
    """HTML with scripts, event handlers and javascript: links removed (nh3's safe defaults)."""
    return nh3.clean(html, link_rel="noopener noreferrer")
