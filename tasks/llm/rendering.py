"""Prompt rendering: Jinja2 templates in a sandbox, with every variable required."""

from __future__ import annotations

import functools
import json
from typing import Any

import jinja2
from jinja2.sandbox import SecurityError

from tasks.errors import InvalidInput
from tasks.llm import sandbox

MAX_TEMPLATE_BYTES = 32 * 1024
MAX_CONTEXT_BYTES = 64 * 1024
MAX_CONTEXT_DEPTH = 32
MAX_PROMPT_CHARS = 256 * 1024
NESTED_TOO_DEEPLY = (
    f"is nested too deeply (at most {MAX_CONTEXT_DEPTH} levels of objects and lists)"
)


@functools.lru_cache(maxsize=512)
def _compile(template: str) -> tuple[jinja2.Template, frozenset[str]]:
    # Parsing and compiling cost about a millisecond; the same template is rendered many times.
    return sandbox.compile_template(template)


def check_template(template: str) -> set[str]:
    """Parse a template; return the names of the variables it uses.

    Raises InvalidInput(field="template") when it is too large or does not parse.
    """
    return set(_checked(template)[1])


def _checked(template: str) -> tuple[jinja2.Template, frozenset[str]]:
    if not isinstance(template, str) or not template.strip():
        raise InvalidInput("template", "is empty")
    try:
        size = len(template.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInput("template", "is not valid Unicode text (lone surrogate)") from exc
    if size > MAX_TEMPLATE_BYTES:
        raise InvalidInput("template", f"is larger than {MAX_TEMPLATE_BYTES // 1024} KiB")
    if "\x00" in template:
        raise InvalidInput("template", "contains a NUL character")
    try:
        return _compile(template)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidInput("template", f"syntax error on line {exc.lineno}: {exc.message}") from exc
    except (RecursionError, SyntaxError, MemoryError) as exc:
        raise InvalidInput("template", "is nested too deeply") from exc


def nesting(value: Any, most: int = MAX_CONTEXT_DEPTH) -> int:
    """How many levels of objects and lists value has (a scalar 0, `{"a": 1}` 1), counting no
    further than most + 1; iterative, so any depth is safe to ask about."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, level)
            if level <= most:
                children = item.values() if isinstance(item, dict) else item
                pending.extend((child, level + 1) for child in children)
    return deepest


def check_depth(value: Any, field: str = "context") -> Any:
    """Return value if it nests at most MAX_CONTEXT_DEPTH levels, else raise InvalidInput."""
    if nesting(value) > MAX_CONTEXT_DEPTH:
        raise InvalidInput(field, NESTED_TOO_DEEPLY)
    return value


def parse_context(text: str, field: str = "context") -> dict[str, Any]:
    """A JSON object typed by a person or read from a file, checked like any context.

    Raises InvalidInput(field) when it is too large, not JSON, not an object or too deep.
    """
    if len(text) > MAX_CONTEXT_BYTES:  # characters: at least as many bytes
        raise InvalidInput(field, f"is larger than {MAX_CONTEXT_BYTES // 1024} KiB")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            field, f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except RecursionError as exc:
        raise InvalidInput(field, NESTED_TOO_DEEPLY) from exc
    if not isinstance(value, dict):
        raise InvalidInput(field, "must be a JSON object ({...})")
    return check_context(value, field)


def check_context(context: Any, field: str = "context") -> dict[str, Any]:
    """Return context if it is a JSON object within the size and nesting bounds, else raise
    InvalidInput(field)."""
    if not isinstance(context, dict):
        raise InvalidInput(field, "must be a JSON object")
    check_depth(context, field)
    try:
        encoded = json.dumps(context, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise InvalidInput(field, f"is not valid JSON: {exc}") from exc
    if len(encoded) > MAX_CONTEXT_BYTES:
        raise InvalidInput(field, f"is larger than {MAX_CONTEXT_BYTES // 1024} KiB")
    if b"\\u0000" in encoded:
        raise InvalidInput(field, "contains a NUL character")
    return context


class TooExpensive(InvalidInput):
    """The render went past its work budget (field "template"; the message names the limit)."""


def render(template: str, context: dict[str, Any], spent: sandbox.Spent | None = None) -> str:
    """Render template with context; what the render spent is added to spent when given.

    Raises TooExpensive past the work budget, InvalidInput naming the missing variables, a
    sandbox violation or the render error.
    """
    compiled, used = _checked(template)
    check_context(context)
    missing = sorted(used - context.keys())
    if missing:
        raise InvalidInput("context", f"missing variables: {', '.join(missing)}")
    try:
        with sandbox.metered(spent):
            prompt = _bounded_output(compiled, context)
    except sandbox.TemplateTooExpensive as exc:
        raise TooExpensive("template", f"template too expensive: {exc}") from exc
    except RecursionError as exc:
        raise TooExpensive(
            "template", "template too expensive: its macros, loops or values nest too deeply"
        ) from exc
    except MemoryError as exc:
        raise TooExpensive("template", "template too expensive: out of memory") from exc
    except SecurityError as exc:
        raise InvalidInput("template", f"not allowed in the sandbox: {exc}") from exc
    except jinja2.UndefinedError as exc:
        raise InvalidInput("context", f"undefined value: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise InvalidInput("template", f"cannot render: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, AssertionError) as exc:
        # AssertionError: Jinja's truncate asserts on its arguments.
        reason = str(exc).split("; use sys.set_int_max_str_digits()")[0]  # not the user's to call
        raise InvalidInput("template", f"cannot render: {type(exc).__name__}: {reason}") from exc
    if not prompt.strip():
        raise InvalidInput("template", "renders to an empty prompt")
    return prompt


def _bounded_output(compiled: jinja2.Template, context: dict[str, Any]) -> str:
    """The rendered prompt, stopped as soon as it passes MAX_PROMPT_CHARS."""
    chunks, size = [], 0
    for chunk in compiled.generate(context):
        size += len(chunk)
        if size > MAX_PROMPT_CHARS:
            raise InvalidInput("template", f"renders to more than {MAX_PROMPT_CHARS} characters")
        chunks.append(chunk)
    return "".join(chunks)
