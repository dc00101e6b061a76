"""The feedback controls beyond the thumbs, for any page that shows an output: reason tags from
the list admins keep, a comment and a corrected answer saved with one Save (the error next to
it), and the feedback's history (who, when, what changed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from dashboard import deps, ui
from dashboard.joblines import plain
from tasks import feedback
from tasks.errors import InvalidInput, LLMJobsError

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from db.models import LLMOutput, User

DETAILS = "details_"  # the prefix of the form's keys, followed by the output's id
CHANGED_LABEL = {
    "feedback": "Thumbs",
    "reasons": "Reasons",
    "comment": "Comment",
    "corrected_answer": "Corrected answer",
}
DETAIL_FIELDS = {**CHANGED_LABEL, "feedback": "Feedback"}
THUMBS = {"thumbs_up": "up", "thumbs_down": "down", "none": "none"}
HISTORY = 200  # the latest changes shown


def details(pool: ConnectionPool, user: User, output: LLMOutput) -> None:
    """Reason tags from the list, a comment and a corrected answer, saved together: only the
    parts changed are sent, so a reason taken off the list stays unless the reasons change. The
    thumbs are apart (their buttons save at once). A save runs the page again, which says what
    was saved."""
    listed = deps.feedback_reasons(pool)
    names = [r.name for r in listed]
    described = {r.name: r.description for r in listed}
    kept = [name for name in output.feedback_reasons if name in names]
    off_list = [name for name in output.feedback_reasons if name not in names]
    key = f"{DETAILS}{output.id}"
    with st.form(key, border=False):
        chosen = st.multiselect(
            "Reasons",
            names,
            default=kept,
            key=f"{key}_reasons",
            format_func=lambda name: f"{name} · {described[name]}" if described[name] else name,
            placeholder="Why? Choose reasons",
            max_selections=feedback.MAX_REASONS,
            help=f"At most {feedback.MAX_REASONS}; admins keep the list (Setup › Reasons).",
        )
        if off_list:
            st.caption(
                f"Also tagged {', '.join(plain(name) for name in off_list)}: no longer on the "
                "list, kept unless you change the reasons."
            )
        comment = st.text_area(
            "Comment",
            value=output.feedback_comment or "",
            max_chars=feedback.MAX_COMMENT_CHARS,
            height=90,
            key=f"{key}_comment",
        )
        corrected = st.text_area(
            "Corrected answer",
            value=output.corrected_answer or "",
            max_chars=feedback.MAX_CORRECTED_CHARS,
            height=140,
            key=f"{key}_corrected",
            help="What the answer should have been. Empty it to clear it.",
        )
        save = st.form_submit_button(
            "Save", icon=":material/save:", type="primary", key=f"{key}_save"
        )
    if not save:
        flash = st.session_state.pop(f"{key}_flash", None)
        if flash:
            st.success(flash, icon=":material/check:")
        return
    parts: dict[str, Any] = {}
    if set(chosen) != set(kept):
        parts["reasons"] = chosen
    if comment != (output.feedback_comment or ""):
        parts["comment"] = comment
    if corrected != (output.corrected_answer or ""):
        parts["corrected_answer"] = corrected
    if not parts:
        st.info("Nothing changed: nothing to save.", icon=":material/info:")
        return
    try:
        event = feedback.set_feedback(pool, output.id, user, **parts)
    except InvalidInput as exc:
        field = DETAIL_FIELDS.get(exc.field, exc.field)
        st.error(f"{field}: {exc.message}", icon=":material/error:")
    except LLMJobsError as exc:
        ui.show_error(exc)
    else:
        deps.forget_analytics()
        saved = ", ".join(CHANGED_LABEL.get(part, part) for part in event.changed)
        st.session_state[f"{key}_flash"] = (
            f"Saved: {saved.lower()}." if saved else "Saved: nothing changed."
        )
        st.rerun()


def history(pool: ConnectionPool, user: User, output: LLMOutput) -> None:
    """Every change of the feedback, oldest first: who, when, what it changed and left."""
    events = feedback.feedback_events(pool, output.id, user, HISTORY)
    if not events:
        return
    changes = f"{len(events)} change{'s' if len(events) > 1 else ''}"
    with st.expander(f"History · {changes}", icon=":material/history:"):
        st.dataframe(
            pd.DataFrame(
                {
                    "When": [ui.when(e.created_at) for e in events],
                    "Who": [e.user_name or str(e.user_id) for e in events],
                    "Changed": [
                        ", ".join(CHANGED_LABEL.get(part, part) for part in e.changed) or "–"
                        for e in events
                    ],
                    "Thumbs": [
                        f"{THUMBS[e.old_value]} → {THUMBS[e.new_value]}"
                        if e.old_value != e.new_value
                        else THUMBS[e.new_value]
                        for e in events
                    ],
                    "Reasons": [", ".join(e.reasons) for e in events],
                    "Comment": [e.comment or "" for e in events],
                    "Corrected answer": [ui.short(e.corrected_answer or "", 120) for e in events],
                }
            ),
            hide_index=True,
            key=f"feedback_history_{output.id}",
        )
        if len(events) == HISTORY:
            st.caption(f"The latest {HISTORY} changes.")
