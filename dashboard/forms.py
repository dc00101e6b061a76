"""What the Submit page computes as you type: the template's variables, the context, the
rendered preview and every check submit would make (through the same tasks functions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg_pool import ConnectionPool

from tasks import fetchers, rendering
from tasks import submit as jobs
from tasks.errors import InvalidInput

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
