"""Prompt rendering: Jinja2 templates in a sandbox, with every variable required."""

from __future__ import annotations

import functools
import json
import operator
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from tasks.errors import InvalidInput

MAX_TEMPLATE_BYTES = 32 * 1024
MAX_CONTEXT_BYTES = 64 * 1024
MAX_PROMPT_CHARS = 256 * 1024
_MAX_REPEAT = 100_000


class _Sandbox(SandboxedEnvironment):
    """The stock sandbox, plus bounds on `*` and `**` so a template cannot exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError("exponent too large")
        if op == "*":
            sizes = [len(v) for v in (left, right) if isinstance(v, str | list | tuple)]
            counts = [v for v in (left, right) if isinstance(v, int)]
            if sizes and counts and sizes[0] * max(counts[0], 0) > _MAX_REPEAT:
                raise SecurityError("repetition too large")
        return {"*": operator.mul, "**": operator.pow}[op](left, right)


_ENV = _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


@functools.lru_cache(maxsize=512)
def _compile(template: str) -> tuple[jinja2.Template, frozenset[str]]:
    # Parsing and compiling cost about a millisecond; the same template is rendered many times.
    return _ENV.from_string(template), frozenset(
        meta.find_undeclared_variables(_ENV.parse(template))
    )


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


def check_context(context: Any) -> dict[str, Any]:
    """Return context if it is a JSON object within the size bound, else raise InvalidInput."""
    if not isinstance(context, dict):
        raise InvalidInput("context", "must be a JSON object")
    try:
        encoded = json.dumps(context, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise InvalidInput("context", f"is not valid JSON: {exc}") from exc
    if len(encoded) > MAX_CONTEXT_BYTES:
        raise InvalidInput("context", f"is larger than {MAX_CONTEXT_BYTES // 1024} KiB")
    if b"\\u0000" in encoded:
        raise InvalidInput("context", "contains a NUL character")
    return context


def render(template: str, context: dict[str, Any]) -> str:
    """Render template with context.

    Raises InvalidInput naming the missing variables, a sandbox violation or the render error.
    """
    compiled, used = _checked(template)
    check_context(context)
    missing = sorted(used - context.keys())
    if missing:
        raise InvalidInput("context", f"missing variables: {', '.join(missing)}")
    try:
        prompt = compiled.render(context)
    except SecurityError as exc:
        raise InvalidInput("template", f"not allowed in the sandbox: {exc}") from exc
    except jinja2.UndefinedError as exc:
        raise InvalidInput("context", f"undefined value: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise InvalidInput("template", f"cannot render: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, OverflowError) as exc:
        raise InvalidInput("template", f"cannot render: {type(exc).__name__}: {exc}") from exc
    if not prompt.strip():
        raise InvalidInput("template", "renders to an empty prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidInput("template", f"renders to more than {MAX_PROMPT_CHARS} characters")
    return prompt
