"""An empty page's next step: where to start (Submit) and, for an admin, a demo month to look at;
no provider limit yet: where to set one."""

from __future__ import annotations

import streamlit as st
from psycopg_pool import ConnectionPool

from dashboard import deps, ui
from db.models import User
from tasks import demo
from tasks.errors import LLMJobsError


def next_step(
    pool: ConnectionPool, user: User, message: str, *, key: str, icon: str = ":material/inbox:"
) -> None:
    """Say the page is empty, then link to Submit; an admin may also load the demo data (when it
    is not loaded already), after which the page reruns with the dashboard's caches cleared."""
    st.info(message, icon=icon)
    with st.container(horizontal=True, vertical_alignment="center"):
        st.page_link(ui.SUBMIT_PAGE, label="Submit a prompt", icon=":material/send:")
        if not user.is_admin or demo.is_loaded(pool):
            return
        clicked = st.button(
            "Load demo data",
            icon=":material/dataset:",
            key=f"{key}_load_demo",
            help=(
                "A month of finished work by the user demo, across offline and provider models. "
                "`llmjobs seed-demo --remove` deletes it again, and nothing else."
            ),
        )
    if clicked:
        try:
            with st.spinner("Loading demo data…"):
                loaded = demo.seed(pool)
        except LLMJobsError as exc:
            ui.show_error(exc)
            return
        deps.forget_demo()
        st.toast(f"Loaded {loaded.outputs} demo outputs.", icon=":material/check_circle:")
        st.rerun()


def no_limits() -> None:
    """No provider limit yet, said as the Queues page says an empty section, with the way to the
    Limits page."""
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption("No provider limits: every model's calls start as soon as a worker is free.")
        st.page_link(ui.LIMITS_PAGE, label="Set a limit", icon=":material/traffic:")
