"""Small components the pages share: badges, an output's answer, errors, live refresh."""

from __future__ import annotations

import contextlib
import functools
import gc
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import streamlit as st

from tasks.errors import LLMJobsError
from tasks.llm.formats import sanitize_html

if TYPE_CHECKING:
    from db.models import LLMOutput

DETAIL_PAGE = "dashboard/output_detail.py"
SUBMIT_PAGE = "dashboard/submit.py"
LIMITS_PAGE = "dashboard/limits.py"

STATUS_LOOK = {
    "pending": ("gray", ":material/schedule:"),
    "processing": ("blue", ":material/progress_activity:"),
    "completed": ("green", ":material/check_circle:"),
    "failed": ("red", ":material/error:"),
}
FEEDBACK_LABEL = {
    "thumbs_up": ":material/thumb_up: thumbs up",
    "thumbs_down": ":material/thumb_down: thumbs down",
    "none": "none",
}
ACTIVE = ("pending", "processing")


@functools.cache
def keep_imports_out_of_gc() -> None:
    """Once per process, after the imports: what they built (hundreds of thousands of objects
    that live as long as the process) leaves the collector's generations, so that a full
    collection, which Python starts now and then during a page's run, no longer walks it."""
    gc.freeze()


def status_badge(status: str) -> None:
    color, icon = STATUS_LOOK.get(status, ("gray", ":material/help:"))
    st.badge(status, icon=icon, color=color)  # type: ignore[arg-type]


def short(text: str, limit: int = 80) -> str:
    """text on one line, cut at limit characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def context_summary(context: dict[str, Any] | None, limit: int = 60) -> str:
    """A context in short, as a person tells outputs apart: `concept=recursion · audience=a
    child`, shortest values first (a long document would hide the rest), nested values as JSON,
    cut at limit characters."""
    if not context:
        return "–"
    parts = [
        f"{name}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
        for name, value in context.items()
    ]
    return short(" · ".join(sorted(parts, key=len)), limit)


def answer_snippet(output: LLMOutput, limit: int = 80) -> str:
    """What an output came to, in one line: the answer's start, the error of a failed one."""
    if output.status == "failed":
        return short(f"Failed: {output.error_message or 'no reason given'}", limit)
    if output.status != "completed":
        return "…"
    value = output.parsed_output if output.parsed_output is not None else output.raw_response
    if value is None:
        return "–"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return short(text, limit)


KIND_LABEL = {"original": "original", "re_run": "re-run", "regenerate": "regenerate"}


def number(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def duration(ms: float | int | None) -> str:
    """A latency as people read it: milliseconds below a second ("4 ms"), else seconds."""
    if ms is None:
        return "–"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def calls_a_minute(rate: float) -> str:
    """A pace as people say it: "500 calls a minute", "1.5 calls a minute", "a call every 4 min"."""
    if rate >= 10:
        return f"{rate:,.0f} calls a minute"
    if rate >= 1:
        shown = f"{rate:.1f}".removesuffix(".0")
        return f"{shown} call{'' if shown == '1' else 's'} a minute"
    every = 1 / rate
    return f"a call every {every:.0f} min" if every < 90 else f"a call every {every / 60:.1f} h"


def time_left(seconds: float) -> str:
    """A wait ahead, roughly: "under a minute", "6 min", "2.5 h", "3 days"."""
    if seconds < 60:
        return "under a minute"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def dollars(cost: Decimal | float | None) -> str:
    return "–" if cost is None else f"${float(cost):.6f}".rstrip("0").rstrip(".")


def dollars_short(cost: Decimal | float | None) -> str:
    """A cost for a narrow figure: cents from a cent up, the significant digits below."""
    if cost is None or abs(float(cost)) < 0.01:
        return dollars(cost)
    return f"${float(cost):,.2f}"


def when(value: Any) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def user_filter(container: Any, people: dict[int, str], key: str) -> int | None:
    """An admin's choice of one user (their id), or None for everyone."""
    return container.selectbox(
        "User",
        [None, *people],
        key=key,
        format_func=lambda u: "Everyone" if u is None else people[u],
    )


def show_error(exc: LLMJobsError) -> None:
    """A refused action, said plainly (InvalidInput names the field to fix)."""
    st.error(str(exc), icon=":material/error:")


def schema_input(
    key: str, what: str, value: str = "", label: str = "JSON Schema (optional)"
) -> str:
    """A text area for a JSON Schema (Draft 2020-12) as JSON; empty means none. what: the
    outputs it applies to, in a few words."""
    return st.text_area(
        label,
        value=value,
        height=120,
        key=key,
        placeholder='{"type": "object", "properties": {"summary": {"type": "string"}}}',
        help=f"For json outputs only: {what} must validate against it (Draft 2020-12).",
    )


def output_link(output_id: int, label: str | None = None) -> None:
    st.page_link(
        DETAIL_PAGE,
        label=label or f"Output #{output_id}",
        icon=":material/open_in_new:",
        query_params={"id": str(output_id)},
    )


def answer(output: LLMOutput) -> None:
    """The parsed answer as its format shows it; HTML sanitized again and never scripted."""
    formatted(output.parsed_output, output.format)


def formatted(value: Any, format: str) -> None:
    """A parsed answer as its format shows it (answer, for what is not a whole output)."""
    if value is None:
        st.caption("No answer.")
    elif format == "json":
        st.json(value)
    elif format == "markdown":
        st.markdown(str(value))
    elif format == "html":
        st.html(sanitize_html(str(value)))
    else:
        st.text(str(value))


def database_message(exc: psycopg.Error) -> str:
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return "The database has no LLM Jobs tables yet: run `llmjobs migrate`."
    if isinstance(exc, psycopg.OperationalError):
        return (
            "The database cannot be reached right now. Check that PostgreSQL is running and "
            "DATABASE_URL is right, then reload the page."
        )
    return "The database answered with an error. Reload the page; tell an admin if it persists."


@contextlib.contextmanager
def database_guard() -> Iterator[None]:
    """Turn a database failure into a message instead of a stack trace, then stop the page."""
    try:
        yield
    except psycopg.Error as exc:
        st.error(database_message(exc), icon=":material/database:")
        st.caption(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        st.stop()


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """database_guard for a function (fragments rerun on their own, outside the page's guard)."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        with database_guard():
            return func(*args, **kwargs)

    return run


def live(
    key: str, body: Callable[[], bool], every: float = 1.5, *, active: bool | None = None
) -> None:
    """Show body in a fragment that reruns every `every` seconds while body returns True (some
    job still pending or processing); a change either way reruns the page once, so the timer
    starts or stops and the rest of the page catches up. `active`: what body will return this
    run, when the page has just read it; the timer then follows it at once, without that
    second run of the page."""
    state_key = f"live:{key}"
    if active is not None:
        st.session_state[state_key] = active
    running = bool(st.session_state.get(state_key, False))

    @st.fragment(run_every=every if running else None)
    def area() -> None:
        with database_guard():
            still = body()
        if still != running:
            st.session_state[state_key] = still
            st.rerun()

    area()


def verdicts_panel(pool: Any, user: Any, output: LLMOutput) -> None:
    """An output's LLM judge verdicts (judge, verdict, reason), shown apart from people's
    feedback; nothing when no judge has judged it."""
    from tasks import judges

    verdicts = judges.output_verdicts(pool, output.id, user)
    if not verdicts:
        return
    with st.container(border=True):
        st.markdown(":material/gavel: **LLM judges**")
        st.caption("Verdicts of LLM judges: not people's feedback, never in the thumbs-up rate.")
        st.dataframe(
            [
                {
                    "Judge": v.judge_name,
                    "Verdict": v.outcome,
                    "Reason": v.reason or v.error_message or "",
                }
                for v in verdicts
            ],
            hide_index=True,
            key=f"verdicts_{output.id}",
        )
