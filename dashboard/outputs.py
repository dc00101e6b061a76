"""Outputs: yours (everyone's for admins) newest first, filtered, one page at a time; a row
opens its output. The list refreshes itself while a job on it is pending or processing."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from dashboard import auth, deps, empty, ui
from tasks import exports
from tasks import outputs as jobs
from tasks.analytics import FEEDBACK_VALUES, STATUSES, period
from tasks.errors import InvalidInput
from tasks.llm.formats import FORMATS
from tasks.outputs import MAX_COMMENT_SEARCH_CHARS

if TYPE_CHECKING:
    from db.models import LLMOutput

PAGE_SIZE = 20  # the table shows a whole page: no scrolling inside it
# Widths in pixels, with the user column (admins) at most 1,000: the content width of the wide
# layout on a 1440 px screen with the sidebar open, so no column is cut off.
# Pixels; with the row-selection column they fit the 979 px the table has at 1440 px, sidebar open.
WIDTHS = {"id": 45, "open": 45, "created": 90, "kind": 60, "model": 95, "status": 70}
WIDTHS |= {"feedback": 95, "user": 65, "context": 110, "answer": 120, "comment": 105}
FEEDBACK_SHORT = {"thumbs_up": "up", "thumbs_down": "down", "none": ""}
DATASETS = (
    ("all", "Export all (JSONL)", ":material/download:"),
    ("golden", "Golden set: thumbs up and corrected answers", ":material/thumb_up:"),
    ("eval", "Eval set: thumbs down", ":material/thumb_down:"),
)

user = auth.require_user()
pool = deps.pool()
choices = deps.filter_choices(pool, user)


def any_of(label: str, options: list[Any], key: str, names: dict[Any, str] | None = None) -> Any:
    """A filter: one of options, or None for any."""
    shown = names or {}
    return st.selectbox(
        label,
        [None, *options],
        key=key,
        format_func=lambda v: "Any" if v is None else shown.get(v, str(v)),
    )


st.title(":material/list_alt: Outputs", anchor=False)
with st.container(border=True):
    row = st.columns(4 if not user.is_admin else 5)
    with row[0]:
        status = any_of("Status", list(STATUSES), "outputs_status")
    with row[1]:
        model = any_of("Model", choices.models, "outputs_model")
    with row[2]:
        fmt = any_of("Format", list(FORMATS), "outputs_format")
    with row[3]:
        feedback = any_of("Feedback", list(FEEDBACK_VALUES), "outputs_feedback")
    if user.is_admin:
        with row[4]:
            people = {u.id: u.name for u in deps.users(pool)}
            user_id = any_of("User", list(people), "outputs_user", names=people)
    else:
        user_id = None
    row = st.columns([3, 2, 2])
    with row[0]:
        template = any_of(
            "Template",
            choices.templates,
            "outputs_template",
            names={t: ui.short(t, 90) for t in choices.templates},
        )
    with row[1]:
        dates = st.date_input("Created between (UTC)", value=[], key="outputs_dates")
    with row[2]:
        comment_contains = st.text_input(
            "Comment contains",
            max_chars=MAX_COMMENT_SEARCH_CHARS,
            placeholder="text in the feedback's comment",
            key="outputs_comment",
            help="Only outputs whose feedback comment contains this text (any case), newest first.",
        )

try:
    start, end = [*dates, None, None][:2]
    created_after, created_before = period(start, end or start)
except InvalidInput as exc:
    ui.show_error(exc)
    st.stop()

filters = {
    "status": status,
    "model": model,
    "format": fmt,
    "feedback": feedback,
    "template": template,
    "created_after": created_after,
    "created_before": created_before,
}
if user.is_admin and user_id is not None:
    filters["user_id"] = user_id
if comment_contains.strip():
    filters["comment_contains"] = comment_contains
batch_id = st.query_params.get("batch", "")
if batch_id.isdigit() and len(batch_id) < 19:  # a batch's "Its outputs" link
    filters["batch_id"] = int(batch_id)
    st.caption(f"The outputs of batch #{batch_id}.")


def dataset(kind: exports.Kind) -> str:
    """The completed outputs of these filters as JSONL (the kind decides the feedback)."""
    wanted = ("user_id", "model", "format", "template", "created_after", "created_before")
    return "".join(
        exports.export_jsonl(pool, user, kind=kind, **{k: filters.get(k) for k in wanted})
    )


with st.container(horizontal=True, vertical_alignment="center"):
    for kind, label, icon in DATASETS:
        st.download_button(
            label,
            data=functools.partial(dataset, kind),  # made on click
            file_name=f"llmjobs-{kind}.jsonl",
            mime="application/jsonl",
            icon=icon,
            on_click="ignore",
            key=f"outputs_export_{kind}",
        )
    st.caption(
        "Completed outputs matching the filters (status, feedback and comment aside), with "
        "chat messages for fine-tuning."
    )

# Keyset pages: the ids each page starts below (None: the newest). Changing a filter starts over.
signature = repr(sorted(filters.items(), key=lambda kv: kv[0]))
if st.session_state.get("outputs_signature") != signature:
    st.session_state["outputs_signature"] = signature
    st.session_state["outputs_cursors"] = [None]
cursors: list[int | None] = st.session_state["outputs_cursors"]


def read_page() -> list[LLMOutput]:
    """The outputs of the current page, and the first of the next (whether there is one)."""
    return jobs.list_outputs(pool, user, **filters, before_id=cursors[-1], limit=PAGE_SIZE + 1)


def rated(output: LLMOutput) -> str:
    """The thumbs and the reasons, in short."""
    thumbs = FEEDBACK_SHORT.get(output.feedback, output.feedback)
    return " · ".join(filter(None, [thumbs, ", ".join(output.feedback_reasons)]))


# Read before the table is drawn, so the refresh starts with this run when a job on the page is
# still running; the table's own refreshes read again.
try:
    read_now = [read_page()]
except InvalidInput as exc:  # a comment search too long or with NUL, typed around max_chars
    ui.show_error(exc)
    st.stop()
active_now = any(o.status in ui.ACTIVE for o in read_now[0][:PAGE_SIZE])


def table() -> bool:
    page = read_now.pop() if read_now else read_page()
    has_next, page = len(page) > PAGE_SIZE, page[:PAGE_SIZE]
    if not page:
        if len(cursors) == 1:
            empty.next_step(pool, user, "No outputs match.", key="outputs")
        else:
            st.info("No more outputs.", icon=":material/inbox:")
    else:
        frame = pd.DataFrame(
            {
                "id": [o.id for o in page],
                "open": [f"output?id={o.id}" for o in page],
                "created": [o.created_at for o in page],
                **({"user": [o.user_name for o in page]} if user.is_admin else {}),
                "context": [ui.context_summary(o.context) for o in page],
                "answer": [ui.answer_snippet(o) for o in page],
                "kind": [ui.KIND_LABEL.get(o.kind, o.kind) for o in page],
                "model": [o.model for o in page],
                "status": [o.status for o in page],
                "feedback": [rated(o) for o in page],
                "comment": [ui.short(o.feedback_comment or "", 60) for o in page],
            }
        )
        # Without a user column, the answer takes its room.
        widths = WIDTHS if user.is_admin else WIDTHS | {"answer": WIDTHS["answer"] + WIDTHS["user"]}
        event = st.dataframe(
            frame,
            hide_index=True,
            key=f"outputs_table_{len(cursors)}",
            on_select="rerun",
            selection_mode="single-row",
            height="content",
            column_config={
                "id": st.column_config.NumberColumn("#", format="%d", width=widths["id"]),
                "open": st.column_config.LinkColumn("", display_text="Open", width=widths["open"]),
                "created": st.column_config.DatetimeColumn(
                    "Created (UTC)", format="MMM D, HH:mm", width=widths["created"]
                ),
                "user": st.column_config.TextColumn("User", width=widths["user"]),
                "context": st.column_config.TextColumn(
                    "Context", width=widths["context"], help="The context's values, in short"
                ),
                "answer": st.column_config.TextColumn(
                    "Answer", width=widths["answer"], help="The answer's start, or the error"
                ),
                "kind": st.column_config.TextColumn(
                    "Kind", width=widths["kind"], help="original, re-run or regenerate"
                ),
                "model": st.column_config.TextColumn("Model", width=widths["model"]),
                "status": st.column_config.TextColumn("Status", width=widths["status"]),
                "feedback": st.column_config.TextColumn(
                    "Rated", width=widths["feedback"], help="The thumbs, then the reasons"
                ),
                "comment": st.column_config.TextColumn(
                    "Comment", width=widths["comment"], help="The feedback's comment, in short"
                ),
            },
        )
        if event.selection.rows:
            chosen = page[event.selection.rows[0]].id
            st.switch_page(ui.DETAIL_PAGE, query_params={"id": str(chosen)})
    back, page_no, forward = st.columns([1, 2, 1])
    if back.button(
        "Newer", icon=":material/chevron_left:", disabled=len(cursors) == 1, key="outputs_newer"
    ):
        cursors.pop()
        st.rerun()
    page_no.caption(f"Page {len(cursors)} · {PAGE_SIZE} per page · newest first")
    if forward.button(
        "Older", icon=":material/chevron_right:", disabled=not has_next, key="outputs_older"
    ):
        cursors.append(page[-1].id)
        st.rerun()
    return any(o.status in ui.ACTIVE for o in page)


ui.live("outputs", table, every=2.0, active=active_now)
