"""The pages, for whoever is visiting: the sign-in page alone until someone is signed in."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, ui


def pages() -> dict[str, list[st.Page]] | list[st.Page]:
    with ui.database_guard():
        user = auth.current_user()
    if user is None:
        return [st.Page("dashboard/sign_in.py", title="Sign in", icon=":material/login:")]
    auth.account_box(user)
    return {
        "Jobs": [
            st.Page(ui.SUBMIT_PAGE, title="Submit", icon=":material/send:", default=True),
            st.Page("dashboard/compare.py", title="Compare", icon=":material/compare_arrows:"),
            st.Page("dashboard/batches.py", title="Batches", icon=":material/dataset:"),
            st.Page("dashboard/outputs.py", title="Outputs", icon=":material/list_alt:"),
            st.Page(ui.DETAIL_PAGE, title="Output", icon=":material/article:", url_path="output"),
        ],
        "Quality": [
            st.Page("dashboard/analytics.py", title="Analytics", icon=":material/insights:"),
            st.Page("dashboard/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
        ],
        "Setup": [
            st.Page("dashboard/templates.py", title="Templates", icon=":material/description:"),
            st.Page("dashboard/agents.py", title="Agents", icon=":material/smart_toy:"),
            st.Page("dashboard/queues.py", title="Queues", icon=":material/stacks:"),
        ],
    }
