"""What the Submit page computes as you type: the template's variables, the context, the
rendered preview and every check submit would make (through the same tasks functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jinja2
from psycopg_pool import ConnectionPool

from tasks import fetchers
from tasks import outputs as jobs
from tasks.errors import InvalidInput
from tasks.llm import rendering, schemas

if TYPE_CHECKING:
    from db.models import User


@dataclass
class Check:
    """The outcome of checking a request: the prompt it renders to, or what is wrong."""

    prompt: str | None = None
    error: InvalidInput | None = None
    fetched: dict[str, Any] = field(default_factory=dict)


def variables(template: str) -> tuple[list[str], InvalidInput | None]:
    """The variable names a template uses (sorted), or the template's error."""
    if not template.strip():
        return [], None
    try:
        return sorted(rendering.check_template(template)), None
    except InvalidInput as exc:
        return [], exc


def parse_context(text: str) -> tuple[dict[str, Any], InvalidInput | None]:
    """A JSON object typed by a person, or the reason it is not one."""
    if not text.strip():
        return {}, None
    try:
        return rendering.parse_context(text), None
    except InvalidInput as exc:
        return {}, exc


def given(context: dict[str, Any]) -> dict[str, Any]:
    """The values a person has given: an empty field and `""` in the JSON editor both mean a
    variable not filled in yet, so both are reported as missing."""
    return {name: value for name, value in context.items() if value != ""}


def check(
    pool: ConnectionPool,
    user: User,
    *,
    template: str,
    context: dict[str, Any],
    model: str | None,
    format: str | None,
    queue: str | None,
    agent: int | None,
    fetcher: str | None,
) -> Check:
    """Check a request exactly as submit will (fetcher context under the typed one) and render
    its prompt. Writes nothing."""
    found = Check()
    try:
        with pool.connection() as conn:
            if fetcher:
                found.fetched = fetchers.fetch_context(conn, fetcher, user)
            merged = {**found.fetched, **context}
            jobs.validate(
                conn,
                template=template,
                model=model,
                context=merged,
                format=format,
                queue=queue,
                agent=agent,
            )
        found.prompt = rendering.render(template, merged)
    except InvalidInput as exc:
        found.error = exc
    return found


SCHEMA_EXAMPLE = (
    '{"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}'
)
_KINDS = {
    "object": ("an object", "objects"),
    "array": ("a list", "lists"),
    "string": ("a text", "texts"),
    "integer": ("a whole number", "whole numbers"),
    "number": ("a number", "numbers"),
    "boolean": ("true or false", "true or false values"),
    "null": ("null", "nulls"),
}
SUMMARY_NAMES = 8  # properties a summary names before "and N more"


def schema_check(text: str) -> tuple[dict[str, Any] | None, InvalidInput | None]:
    """A JSON Schema typed by a person, checked as submit checks it (None: nothing typed), or
    why it cannot be used. The validator is imported only once something is typed."""
    if not text.strip():
        return None, None
    try:
        return schemas.check_schema(text), None
    except InvalidInput as exc:
        return None, exc


def _kind(schema: Any, plural: bool = False) -> str | None:
    kind = schema.get("type") if isinstance(schema, dict) else None
    kinds = [kind] if isinstance(kind, str) else kind if isinstance(kind, list) else []
    words = [_KINDS[k][plural] for k in kinds if k in _KINDS]
    return " or ".join(words) or None


def schema_summary(schema: dict[str, Any]) -> str:
    """What a valid schema asks for, in one line: "an object with summary (required), risks"."""
    properties = schema.get("properties")
    if isinstance(properties, dict) and properties:
        required = set(schema.get("required") or ())
        names = [f"{n} (required)" if n in required else n for n in properties]
        more = len(names) - SUMMARY_NAMES
        listed = ", ".join(names[:SUMMARY_NAMES]) + (f" and {more} more" if more > 0 else "")
        return f"an object with {listed}"
    kind = _kind(schema)
    if kind == "a list" and _kind(schema.get("items"), plural=True):
        return f"a list of {_kind(schema['items'], plural=True)}"
    if kind:
        return kind
    if "enum" in schema or "const" in schema:
        return "one of the values it lists"
    return "any JSON value it allows"


MISSING = "missing variables: "
_FIELD_WORDS = {"context": "The context", "template": "The template", "model": "The model"}
_TOKEN_WORDS = {
    "end of print statement": "`}}`",
    "begin of print statement": "`{{`",
    "end of statement block": "`%}`",
    "begin of statement block": "`{%`",
    "end of template": "the end of the template",
    "name": "a name",
}
_TOKEN_TEXT = {"end of print statement": "}}", "end of statement block": "%}"}


def _token(name: str) -> str:
    return _TOKEN_WORDS.get(name, f"`{name}`")


def syntax_column(source: str, lineno: int, message: str) -> int:
    """Where on line lineno (1-based) Jinja's syntax error is, from 1: Jinja gives only the line,
    so the column is found from the message (the token it complains about) and the source."""
    lines = source.splitlines() or [""]
    line = lines[min(max(lineno, 1), len(lines)) - 1]
    starts = (line.find(mark) for mark in ("{{", "{%", "{#"))
    opening = min((i for i in starts if i >= 0), default=-1)
    if "end of template" in message.lower() and "got" not in message:
        return len(line.rstrip()) + 1
    found = re.search(r"(?:got|unexpected|unknown tag) '([^']+)'", message)
    if found:
        text = _TOKEN_TEXT.get(found.group(1), found.group(1))
        at = line.find(text, max(opening, 0))
        if at >= 0:
            return at + 1
    return opening + 1 if opening >= 0 else 1


def syntax_words(message: str) -> str:
    """Jinja's syntax error message in an analyst's words: what was expected."""
    innermost = re.search(r"innermost block that needs to be closed is '(\w+)'", message)
    wanted = message.partition("looking for the following tags:")[2]
    looking = re.findall(r"'(end\w+)'", wanted)
    unknown = re.match(r"Encountered unknown tag '(\w+)'", message)
    if message.lower().startswith("unexpected end of template") and innermost:
        block = innermost.group(1)
        closing = looking[0] if looking else f"end{block}"
        return f"the `{{% {block} %}}` block is never closed: expected `{{% {closing} %}}`"
    if unknown and innermost:
        block = innermost.group(1)
        closing = looking[0] if looking else f"end{block}"
        return (
            f"`{{% {unknown.group(1)} %}}` cannot close the open `{{% {block} %}}` block: "
            f"expected `{{% {closing} %}}`"
        )
    if unknown and unknown.group(1).startswith("end"):
        block = unknown.group(1).removeprefix("end")
        return f"`{{% {unknown.group(1)} %}}` closes nothing: no `{{% {block} %}}` block is open"
    if unknown:
        return f"there is no tag `{{% {unknown.group(1)} %}}`"
    if message.startswith("Missing end of comment tag"):
        return "a comment `{#` is never closed: expected `#}`"
    ends = re.match(r"unexpected end of template, expected '([^']+)'", message)
    if ends:
        return f"the template ends too early: expected {_token(ends.group(1))}"
    expected = re.match(r"expected token '([^']+)', got '([^']+)'", message)
    if expected:
        return f"expected {_token(expected.group(1))} but found {_token(expected.group(2))}"
    value = re.match(r"Expected an expression, got '([^']+)'", message)
    if value:
        return f"expected a value (a variable, text or a number) but found {_token(value.group(1))}"
    instead = re.match(r"unexpected '([^']+)', expected '([^']+)'", message)
    if instead:
        return f"expected {_token(instead.group(2))} but found {_token(instead.group(1))}"
    unexpected = re.match(r"unexpected '([^']+)'", message)
    if unexpected:
        return f"{_token(unexpected.group(1))} was not expected here"
    return message.rstrip(".")


def problem(exc: InvalidInput, template: str = "") -> str:
    """An error of the Submit page in an analyst's words, without `field:` prefixes: the
    variables to fill in, where a template's syntax error is and what was expected, else the
    message with the field it is about."""
    cause = exc.__cause__
    if exc.field == "json_schema":
        return f"Not a valid JSON Schema: {exc.message.rstrip('.')}."
    if exc.field == "context" and exc.message.startswith(MISSING):
        return f"Fill in: {exc.message.removeprefix(MISSING)}"
    if isinstance(cause, jinja2.TemplateSyntaxError):
        line = cause.lineno or 1
        column = syntax_column(template, line, cause.message or "")
        return (
            f"The template has a mistake on line {line}, column {column}: "
            f"{syntax_words(cause.message or '')}."
        )
    subject = _FIELD_WORDS.get(exc.field)
    if subject and re.match(r"(is|must|contains|renders|has) ", exc.message):
        return f"{subject} {exc.message}."
    return exc.message[:1].upper() + exc.message[1:]
