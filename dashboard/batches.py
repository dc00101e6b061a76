"""Batches: one template over every row of a CSV or JSONL file. Upload a file, check the
template's variables against its columns, and submit (bad rows are listed by number and nothing
is queued, unless they are skipped). Then each batch shows its progress and cost; cancel its
waiting jobs, retry its failed rows, download its results. A batch's progress refreshes itself
while it has unfinished rows, and says when its model's rate limit paces it."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from dashboard import auth, deps, editor, empty, ui
from dashboard.joblines import plain
from tasks import batches
from tasks.config import QUEUES, get_settings
from tasks.errors import BudgetExceeded, InvalidInput, InvalidRows, LLMJobsError

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from db.models import User

EXAMPLE_TEMPLATE = "Summarise {{ text }} in one sentence."
PREVIEW_ROWS = 10
LISTED = 20
OUTPUTS_PAGE = "dashboard/outputs.py"

user = auth.require_user()
pool = deps.pool()
models = deps.usable_models()
model_names = [m.name for m in models]
offline = {m.name for m in models if m.offline}

st.session_state.setdefault("batch_model", deps.default_model())
st.session_state.setdefault("batch_format", "text")
st.session_state.setdefault("batch_queue", "low")
st.session_state.setdefault("batch_cache", get_settings().cache)


def count(n: int, thing: str) -> str:
    """ "1 row", "2 rows"."""
    return f"{n:,} {thing}" if n == 1 else f"{n:,} {thing}s"


def cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def preview(rows: list[Any]) -> pd.DataFrame:
    """The first rows as text (a line that is not an object shows as such)."""
    shown = [
        {k: cell(v) for k, v in row.items()} if isinstance(row, dict) else {"(row)": cell(row)}
        for row in rows[:PREVIEW_ROWS]
    ]
    frame = pd.DataFrame(shown)
    frame.index = range(1, len(frame) + 1)
    return frame


def bad_rows(exc: InvalidRows) -> None:
    """Refused rows by number: which field and why (the first few, then how many more)."""
    st.dataframe(
        pd.DataFrame([list(r) for r in exc.rows], columns=["row", "field", "message"]),
        hide_index=True,
        key="batch_bad_rows",
    )
    if exc.unreported:
        st.caption(f"and {count(exc.unreported, 'more row')}")


def new_batch() -> None:
    """Upload, preview, template, options and Submit."""
    # A submitted file is let go (a new key empties the uploader), so it is not sent twice.
    upload = st.file_uploader(
        "A CSV file (a header row naming the columns) or JSONL (one JSON object per line)",
        type=["csv", "jsonl", "ndjson"],
        key=f"batch_file_{st.session_state.get('batch_uploads', 0)}",
    )
    if upload is None:
        st.caption("Each row fills the template's variables by column name and becomes a job.")
        return
    try:
        parsed = deps.parsed_file(upload.file_id, upload.name, upload.getvalue())
    except InvalidRows as exc:
        st.error(
            f"{count(exc.count, 'line')} of {upload.name} cannot be read.",
            icon=":material/error:",
        )
        bad_rows(exc)
        return
    except InvalidInput as exc:
        ui.show_error(exc)
        return
    st.caption(
        f"{count(len(parsed.rows), 'row')} · columns: {', '.join(parsed.columns) or 'none'}"
        + (f" · the first {PREVIEW_ROWS}:" if len(parsed.rows) > PREVIEW_ROWS else "")
    )
    st.dataframe(preview(parsed.rows), key="batch_preview")

    left, right = st.columns([3, 2], gap="large")
    with left:
        template = editor.template_area("batch", example=EXAMPLE_TEMPLATE)
        missing = [v for v in template.variables if v not in parsed.columns]
        if missing:
            st.warning(
                f"Not a column of the file: {', '.join(missing)}. Rows without it will be refused.",
                icon=":material/table_rows:",
            )
        elif template.variables:
            st.caption(
                f":material/check: Every variable is a column: {', '.join(template.variables)}."
            )
        unused = [c for c in parsed.columns if c not in template.variables]
        if unused and not template.error:
            st.caption(f"Columns the template does not use: {', '.join(unused)}.")
    with right:
        model = st.selectbox(
            "Model",
            model_names,
            format_func=lambda m: f"{m} (offline)" if m in offline else m,
            key="batch_model",
        )
        fmt = editor.format_choice("batch", template)
        schema = ui.schema_input("batch_schema", "every row's answer") if fmt == "json" else ""
        queue = st.selectbox(
            "Queue", QUEUES, key="batch_queue", help="low runs after high and default jobs"
        )
        name = st.text_input(
            "Name", key="batch_name", max_chars=200, placeholder=PurePath(upload.name).stem
        )
        skip = st.checkbox(
            "Skip bad rows",
            key="batch_skip",
            help="Queue the good rows and list the bad ones; otherwise a bad row queues nothing.",
        )
        cache = st.checkbox(
            "Use cache",
            key="batch_cache",
            help="Reuse a recent answer to the same prompt, model and format: no call, no cost.",
        )
        clicked = st.button(
            "Submit batch",
            type="primary",
            icon=":material/send:",
            key="batch_submit",
            disabled=template.error is not None or not template.text.strip(),
        )
    if not clicked:
        return
    try:
        made = batches.submit_batch(
            pool,
            user=user,
            **template.submit_args(),
            model=model,
            rows=parsed.rows,
            columns=parsed.columns,
            format=fmt,
            queue=queue,
            name=name.strip() or PurePath(upload.name).stem,
            skip_invalid=skip,
            cache=cache,
            json_schema=schema,
        )
    except InvalidRows as exc:
        fix = "" if skip else " Fix them, or tick “Skip bad rows” to queue the others."
        st.error(
            f"{count(exc.count, 'bad row')}: nothing was queued.{fix}",
            icon=":material/error:",
        )
        bad_rows(exc)
    except BudgetExceeded as exc:
        st.error(f"Not queued: {exc}.", icon=":material/account_balance_wallet:")
    except InvalidInput as exc:
        ui.show_error(exc)
    else:
        deps.forget_batches()
        skipped = f", {count(len(made.skipped), 'bad row')} skipped" if made.skipped else ""
        # a toast outlives the rerun that empties the uploader and starts the progress refresh
        st.toast(
            f"Batch “{made.name}” queued: {count(made.total, 'row')}{skipped}.",
            icon=":material/check:",
        )
        st.session_state["batch_uploads"] = st.session_state.get("batch_uploads", 0) + 1
        st.rerun()


def act(
    batch_id: int,
    action: Callable[[ConnectionPool, int, User], list[int]],
    done: Callable[[int], str],
) -> None:
    """Cancel the batch's waiting jobs or retry its failed rows, then draw the page again with
    fresh figures (a toast says what was done), or say why not."""
    try:
        changed = action(pool, batch_id, user)
    except LLMJobsError as exc:
        ui.show_error(exc)
        return
    # every figure that counts these outputs is read again on the rerun
    deps.forget_batches()
    deps.forget_analytics()
    st.session_state.pop(f"batch_confirm_cancel_{batch_id}", None)
    st.toast(f"Batch #{batch_id}: {done(len(changed))}.", icon=":material/check:")
    st.rerun()


def progress(batch: batches.Batch) -> None:
    finished = batch.completed + batch.failed + batch.cancelled
    cancelled = f"{batch.cancelled:,} cancelled · " if batch.cancelled else ""
    st.progress(
        finished / batch.total if batch.total else 1.0,
        text=f"{batch.completed:,} completed · {batch.failed:,} failed · {cancelled}"
        f"{batch.unfinished:,} pending of {batch.total:,}",
    )
    st.caption(f"Cost so far: {ui.dollars(batch.cost)}")


def retried(batch: batches.Batch) -> Callable[[int], str]:
    """What a retry queued again, failed and cancelled rows said apart (as the card counted
    them)."""

    def said(n: int) -> str:
        if not batch.cancelled:
            return f"{count(n, 'failed row')} queued again"
        if not batch.failed:
            return f"{count(n, 'cancelled row')} queued again"
        failed = min(batch.failed, n)
        return (
            f"{count(failed, 'failed row')} and {count(n - failed, 'cancelled row')} queued again"
        )

    return said


def retry_label(batch: batches.Batch) -> str:
    if batch.cancelled and not batch.failed:
        return "Retry cancelled"
    if batch.cancelled:
        return "Retry failed and cancelled"
    return "Retry failed"


def confirm_cancel(batch: batches.Batch) -> None:
    """The question before cancelling: how many jobs, and what happens to the running ones."""
    with st.container(border=True):
        st.warning(
            f"Cancel the {count(batch.unfinished, 'unfinished row')} of this batch? Jobs not yet "
            "started are cancelled; jobs already running finish. Cancelled rows can be retried.",
            icon=":material/warning:",
        )
        with st.container(horizontal=True):
            yes = st.button(
                "Yes, cancel them",
                type="primary",
                icon=":material/cancel:",
                key=f"batch_cancel_yes_{batch.id}",
            )
            no = st.button("Keep them", icon=":material/undo:", key=f"batch_cancel_no_{batch.id}")
    if yes:
        act(batch.id, batches.cancel_batch, lambda n: f"{count(n, 'waiting job')} cancelled")
    if no:
        st.session_state.pop(f"batch_confirm_cancel_{batch.id}", None)
        st.rerun()


def paced(batch: batches.Batch) -> None:
    """When its model's rate limit paces the batch: by which limit, and when it will be done at
    that pace (its rows still to start; other jobs of the model share the limit)."""
    pace = deps.batch_pace(pool, user, batch)
    if pace is None or pace.pace.calls_per_minute is None:
        return
    now = datetime.now(UTC)
    limit = pace.pace.pattern or batch.model
    near = f"{pace.finish:%H:%M} UTC"
    if pace.finish.date() != now.date():
        near = f"{pace.finish:%Y-%m-%d} {near}"
    st.caption(
        f":material/speed: Paced by the {plain(limit)} limit "
        f"({ui.calls_a_minute(pace.pace.calls_per_minute)}): about "
        f"{ui.time_left((pace.finish - now).total_seconds())} left, done near {near}"
    )


def follow(batch_id: int) -> bool:
    """The progress as it is now, and the pace of a limit; True while rows are unfinished."""
    batch = deps.batch(pool, user, batch_id)
    progress(batch)
    paced(batch)
    return batch.unfinished > 0


def one_batch(batch: batches.Batch, owners: dict[int, str]) -> None:
    title = batch.name or "Unnamed batch"
    st.markdown(f"**{title}** · #{batch.id} · {batch.model} · {batch.format} · {batch.queue} queue")
    owner = f" · by {owners.get(batch.user_id, batch.user_id)}" if owners else ""
    st.caption(
        f"Created {ui.when(batch.created_at)}{owner}"
        + (f" · cancelled {ui.when(batch.cancelled_at)}" if batch.cancelled_at else "")
    )
    if batch.unfinished:
        # Only the progress refreshes: the buttons keep their downloads between refreshes, and
        # the page is drawn again once the batch is done.
        ui.live(f"batch:{batch.id}", functools.partial(follow, batch.id), every=3.0, active=True)
    else:
        progress(batch)
    if batch.skipped:
        with st.expander(
            f"{count(len(batch.skipped), 'bad row')} skipped", icon=":material/block:"
        ):
            st.dataframe(
                pd.DataFrame([list(r) for r in batch.skipped], columns=["row", "field", "message"]),
                hide_index=True,
                key=f"batch_skipped_{batch.id}",
            )
    confirming = f"batch_confirm_cancel_{batch.id}"
    with st.container(horizontal=True):
        cancel = st.button(
            "Cancel waiting jobs",
            icon=":material/cancel:",
            key=f"batch_cancel_{batch.id}",
            disabled=not batch.unfinished or confirming in st.session_state,
        )
        retry = st.button(
            retry_label(batch),
            icon=":material/replay:",
            key=f"batch_retry_{batch.id}",
            disabled=not (batch.failed or batch.cancelled),
        )
        st.page_link(
            OUTPUTS_PAGE,
            label="Its outputs",
            icon=":material/list_alt:",
            query_params={"batch": str(batch.id)},
        )
        for kind, mime in (("csv", "text/csv"), ("jsonl", "application/jsonl")):
            st.download_button(
                f"Results ({kind.upper()})",
                # made on click, from the rows as they are then
                data=functools.partial(batches.results, pool, batch.id, user, kind),
                file_name=f"batch-{batch.id}-results.{kind}",
                mime=mime,
                icon=":material/download:",
                on_click="ignore",
                key=f"batch_{kind}_{batch.id}",
            )
    if cancel:
        st.session_state[confirming] = True
        st.rerun()
    if confirming in st.session_state:
        if batch.unfinished:
            confirm_cancel(batch)
        else:  # nothing left to cancel
            st.session_state.pop(confirming)
    if retry:
        act(batch.id, batches.retry_failed, retried(batch))


def batch_list() -> None:
    """The newest batches, each with its progress and actions."""
    listed = deps.batch_list(pool, user, LISTED)
    if not listed:
        empty.next_step(pool, user, "No batches yet.", key="batches")
        return
    owners = {u.id: u.name for u in deps.users(pool)} if user.is_admin else {}
    for batch in listed:
        with st.container(border=True):
            one_batch(batch, owners)
    if len(listed) == LISTED:
        st.caption(f"The {LISTED} newest batches.")


st.title(":material/dataset: Batches", anchor=False)
with st.container(border=True):
    st.subheader(":material/upload_file: New batch", anchor=False)
    new_batch()

st.subheader(
    ":material/list: Everyone's batches" if user.is_admin else ":material/list: Your batches",
    anchor=False,
)
batch_list()
