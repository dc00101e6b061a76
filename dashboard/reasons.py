"""Reasons: the tags feedback may give, in the order people see them. Everyone reads the list;
admins add a reason or change its description, move one up or down, and remove one (outputs that
have it keep it), after a confirmation."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import auth, deps
from dashboard.joblines import plain
from tasks import feedback
from tasks.errors import InvalidInput, LLMJobsError

KEY = "reasons_set"  # the prefix of the add form's keys
ERROR = "reasons_error"  # (field, message) of the last refusal
CONFIRM = "reasons_confirm_remove"
FLASH = "reasons_flash"

user = auth.require_user()
pool = deps.pool()

st.title(":material/label: Reasons", anchor=False)
st.markdown(
    "The reasons a person may tag feedback with, next to the thumbs on an Output page (at most "
    f"{feedback.MAX_REASONS} on one output). A reason's name is {feedback.REASON_PATTERN}; the "
    f"list holds at most {feedback.MAX_LISTED_REASONS}. A reason removed from the list stays on "
    "the outputs that have it, and can no longer be given."
)
flash = st.session_state.pop(FLASH, None)
if flash:
    st.success(flash, icon=":material/check:")

listed = deps.feedback_reasons(pool)
if listed:
    st.dataframe(
        pd.DataFrame(
            {
                "Reason": [r.name for r in listed],
                "Description": [r.description for r in listed],
                "Position": [r.position for r in listed],
            }
        ),
        hide_index=True,
        key="reasons_table",
    )
else:
    st.info("No reasons yet: feedback is thumbs only.", icon=":material/label_off:")

if not user.is_admin:
    st.caption(":material/lock: Admins change this list.")
    st.stop()


def refused(exc: LLMJobsError) -> None:
    field = exc.field if isinstance(exc, InvalidInput) else "list"
    message = exc.message if isinstance(exc, InvalidInput) else str(exc)
    st.session_state[ERROR] = (field, message)


def save() -> None:
    """Add the reason the form holds, or change its description (and position, when given);
    then empty the form. A refused reason writes nothing and keeps what was typed."""
    state = st.session_state
    try:
        saved = feedback.add_reason(
            pool,
            user,
            state.get(f"{KEY}_name", ""),
            state.get(f"{KEY}_description", ""),
            state.get(f"{KEY}_position"),
        )
    except LLMJobsError as exc:
        refused(exc)
        return
    deps.forget_reasons()
    state[f"{KEY}_name"] = ""
    state[f"{KEY}_description"] = ""
    state[f"{KEY}_position"] = None
    state[FLASH] = f"Reason {plain(saved.name)} saved."


def move(name: str, step: int) -> None:
    """Move a reason one place up (-1) or down (+1): the list is numbered again in its new
    order."""
    order = [r.name for r in deps.feedback_reasons(pool)]
    if name not in order:
        return
    at = order.index(name)
    to = min(max(at + step, 0), len(order) - 1)
    order.insert(to, order.pop(at))
    try:
        for position, each in enumerate(order, start=1):
            feedback.add_reason(pool, user, each, None, position)
    except LLMJobsError as exc:
        refused(exc)
    deps.forget_reasons()


def remove(name: str) -> None:
    st.session_state.pop(CONFIRM, None)
    try:
        feedback.remove_reason(pool, user, name)
    except LLMJobsError as exc:
        refused(exc)
        return
    deps.forget_reasons()
    st.session_state[FLASH] = f"Reason {plain(name)} removed: the outputs that have it keep it."


def error_for(*fields: str) -> None:
    """The last refusal, next to the control it is about."""
    problem = st.session_state.get(ERROR)
    if problem and problem[0] in fields:
        st.session_state.pop(ERROR)
        st.error(problem[1][:1].upper() + problem[1][1:] + ".", icon=":material/error:")


left, right = st.columns(2, gap="large")
with left, st.container(border=True):
    st.subheader(":material/add: Add or describe a reason", anchor=False)
    with st.form(KEY):
        st.text_input(
            "Name",
            max_chars=64,
            placeholder="e.g. outdated",
            key=f"{KEY}_name",
            help=f"{feedback.REASON_PATTERN}. An existing name changes that reason.",
        )
        error_for("name")
        st.text_input(
            "Description",
            max_chars=feedback.MAX_DESCRIPTION_CHARS,
            placeholder="what it means, in a few words",
            key=f"{KEY}_description",
        )
        error_for("description")
        st.number_input(
            "Position",
            value=None,
            step=1,
            placeholder="last (a new reason), or kept",
            key=f"{KEY}_position",
            help="0 to 1,000: the list is shown by position, then name.",
        )
        error_for("position")
        st.form_submit_button("Save", type="primary", icon=":material/save:", on_click=save)

with right, st.container(border=True):
    st.subheader(":material/swap_vert: Reorder or remove", anchor=False)
    names = [r.name for r in listed]
    if not names:
        st.caption("Nothing to reorder yet.")
    else:
        chosen = st.selectbox("Reason", names, key="reasons_chosen")
        with st.container(horizontal=True):
            st.button(
                "Up",
                icon=":material/arrow_upward:",
                key="reasons_up",
                disabled=names.index(chosen) == 0,
                on_click=move,
                args=(chosen, -1),
            )
            st.button(
                "Down",
                icon=":material/arrow_downward:",
                key="reasons_down",
                disabled=names.index(chosen) == len(names) - 1,
                on_click=move,
                args=(chosen, 1),
            )
            if st.button(
                "Remove",
                icon=":material/delete:",
                key="reasons_remove",
                disabled=st.session_state.get(CONFIRM) == chosen,
            ):
                st.session_state[CONFIRM] = chosen
                st.rerun()
        error_for("list")
        asked = st.session_state.get(CONFIRM)
        if asked in names:
            st.warning(
                f"Remove {plain(asked)} from the list? Outputs tagged with it keep the tag; "
                "nobody can give it any more.",
                icon=":material/warning:",
            )
            with st.container(horizontal=True):
                st.button(
                    "Yes, remove it",
                    type="primary",
                    icon=":material/delete:",
                    key="reasons_remove_yes",
                    on_click=remove,
                    args=(asked,),
                )
                if st.button("Keep it", icon=":material/undo:", key="reasons_remove_no"):
                    st.session_state.pop(CONFIRM, None)
                    st.rerun()
        elif asked is not None:  # removed meanwhile
            st.session_state.pop(CONFIRM, None)

left_over = st.session_state.pop(ERROR, None)  # about no control shown
if left_over:
    st.error(f"{left_over[0]}: {left_over[1]}", icon=":material/error:")
