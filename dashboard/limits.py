"""Limits (admins only): the provider limits per model, where each comes from, who set it and
when; set one (a model or a prefix ending in /, and up to three caps) or clear one, after a
confirmation."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import auth, deps, ui
from dashboard.joblines import plain
from tasks import limits as limit_cases
from tasks.errors import InvalidInput, LLMJobsError

# The form's fields by the names InvalidInput gives them, with what a person reads.
FIELDS = {
    "model": "Model or prefix",
    "rpm": "Requests per minute (rpm)",
    "tpm": "Tokens per minute (tpm)",
    "concurrent": "Calls in flight (concurrent)",
}
KEY = "limits_set"  # the prefix of the set form's keys
CONFIRM = "limits_confirm_clear"

user = auth.require_user()
pool = deps.pool()

st.title(":material/traffic: Limits", anchor=False)
if not user.is_admin:
    st.error(
        "Admins only: a provider limit paces everyone's jobs. The Output page of a job that "
        "waits for one says which.",
        icon=":material/lock:",
    )
    st.stop()

st.markdown(
    "A limit caps a model's calls to its provider, for all workers together: requests per "
    "minute, tokens per minute (prompt and answer) and calls in flight. It names a model "
    "(`openai/gpt-4o`) or a prefix ending in `/` (`openai/`: each model under it, counted "
    "apart); a model takes its own limit, else the longest prefix of its name. Jobs over their "
    "model's limit wait, pending and spending no attempt, until it has room. "
    "**A change applies to running workers at once**, without a restart."
)
st.caption(
    ":material/info: Limits from `LLMJOBS_MODEL_LIMITS` (source *env*) are written by each "
    "worker when it starts: one you clear comes back when a worker restarts, unless an admin "
    "sets that pattern here. An admin's limit wins over the environment's from then on."
)
flash = st.session_state.pop("limits_flash", None)
if flash:
    st.success(flash, icon=":material/check:")


def cap(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def problem(exc: LLMJobsError) -> str:
    """A refused limit in a person's words, naming the field to fix."""
    if not isinstance(exc, InvalidInput):
        return str(exc)
    if exc.message.startswith("give at least one"):
        return "Give at least one cap: requests per minute, tokens per minute or calls in flight."
    return f"{FIELDS.get(exc.field, exc.field)}: {exc.message}."


def save() -> None:
    """Set the limit the form holds, then empty the form for the next one (fields are set, not
    deleted: a browser would show a deleted field's old value until reloaded). A refused limit
    writes nothing and keeps what was typed."""
    state = st.session_state
    pattern = state.get(f"{KEY}_model", "")
    try:
        saved = limit_cases.set_limit(
            pool,
            user,
            pattern,
            rpm=state.get(f"{KEY}_rpm"),
            tpm=state.get(f"{KEY}_tpm"),
            concurrent=state.get(f"{KEY}_concurrent"),
        )
    except LLMJobsError as exc:
        state["limits_error"] = problem(exc)
        return
    deps.forget_limits()
    state[f"{KEY}_model"] = ""
    for field in ("rpm", "tpm", "concurrent"):
        state[f"{KEY}_{field}"] = None
    state.pop(CONFIRM, None)
    state["limits_flash"] = (
        f"Limit {plain(saved.pattern)} set: running workers follow it from their next fetch."
    )


def edit(pattern: str) -> None:
    """Copy a limit into the form, to change its caps."""
    found = next((lim for lim in deps.model_limits(pool) if lim.pattern == pattern), None)
    if found is None:
        return
    state = st.session_state
    state[f"{KEY}_model"] = found.pattern
    state[f"{KEY}_rpm"] = found.rpm
    state[f"{KEY}_tpm"] = found.tpm
    state[f"{KEY}_concurrent"] = found.max_concurrent


def clear(pattern: str) -> None:
    st.session_state.pop(CONFIRM, None)
    try:
        cleared = limit_cases.clear_limit(pool, user, pattern)
    except LLMJobsError as exc:
        st.session_state["limits_error"] = problem(exc)
        return
    deps.forget_limits()
    st.session_state["limits_flash"] = (
        f"Limit {plain(pattern)} cleared: its models' calls are no longer held by it."
        if cleared
        else f"{plain(pattern)} had no limit any more: nothing to clear."
    )


limits = deps.model_limits(pool)
st.subheader(":material/list: Limits now", anchor=False)
if limits:
    st.dataframe(
        pd.DataFrame(
            {
                "Model or prefix": [lim.pattern for lim in limits],
                "Requests per minute": [cap(lim.rpm) for lim in limits],
                "Tokens per minute": [cap(lim.tpm) for lim in limits],
                "Calls in flight": [cap(lim.max_concurrent) for lim in limits],
                "Source": [lim.source for lim in limits],
                "Set by": [lim.updated_by for lim in limits],
                "When": [ui.when(lim.updated_at) for lim in limits],
            }
        ),
        hide_index=True,
        key="limits_table",
    )
    st.caption("Their use, model by model, is on the Queues page.")
else:
    st.info(
        "No limits yet: every model's calls start as soon as a worker is free.",
        icon=":material/traffic:",
    )

left, right = st.columns(2, gap="large")
with left, st.container(border=True):
    st.subheader(":material/add: Set a limit", anchor=False)
    with st.form(KEY):
        st.text_input(
            FIELDS["model"],
            max_chars=200,
            placeholder="openai/gpt-4o, or openai/ for every OpenAI model",
            key=f"{KEY}_model",
        )
        caps = st.columns(3)
        for column, field in zip(caps, ("rpm", "tpm", "concurrent"), strict=True):
            column.number_input(
                FIELDS[field], value=None, step=1, placeholder="no cap", key=f"{KEY}_{field}"
            )
        st.caption(
            "Leave a cap empty for none; give at least one. Setting a pattern that has a limit "
            "replaces its three caps."
        )
        st.form_submit_button("Save", type="primary", icon=":material/save:", on_click=save)
    refused = st.session_state.pop("limits_error", None)
    if refused:
        st.error(refused, icon=":material/error:")

with right, st.container(border=True):
    st.subheader(":material/edit: Change or clear a limit", anchor=False)
    if not limits:
        st.caption("Nothing to change yet.")
    else:
        by_pattern = {lim.pattern: lim for lim in limits}
        chosen = st.selectbox("Limit", list(by_pattern), key="limits_chosen")
        with st.container(horizontal=True):
            st.button(
                "Edit in the form",
                icon=":material/edit:",
                key="limits_edit",
                on_click=edit,
                args=(chosen,),
            )
            if st.button(
                "Clear",
                icon=":material/delete:",
                key="limits_clear",
                disabled=st.session_state.get(CONFIRM) == chosen,
            ):
                st.session_state[CONFIRM] = chosen
                st.rerun()
        asked = st.session_state.get(CONFIRM)
        if asked in by_pattern:
            back = (
                " It comes from `LLMJOBS_MODEL_LIMITS`: it comes back when a worker restarts, "
                "unless you remove it there."
                if by_pattern[asked].source == "env"
                else ""
            )
            st.warning(
                f"Clear the limit of {plain(asked)}? Its models' calls are no longer held by it (a "
                f"model under a shorter prefix with a limit takes that one).{back}",
                icon=":material/warning:",
            )
            with st.container(horizontal=True):
                st.button(
                    "Yes, clear it",
                    type="primary",
                    icon=":material/delete:",
                    key="limits_clear_yes",
                    on_click=clear,
                    args=(asked,),
                )
                if st.button("Keep it", icon=":material/undo:", key="limits_clear_no"):
                    st.session_state.pop(CONFIRM, None)
                    st.rerun()
        elif asked is not None:  # cleared meanwhile
            st.session_state.pop(CONFIRM, None)
