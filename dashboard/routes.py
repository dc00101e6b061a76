"""The pages, for whoever is visiting: the sign-in page until someone is signed in; a page asked
for before signing in (a link to an output, say) is opened once they are."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, ui

SIGN_IN_PAGE = "dashboard/sign_in.py"


def _app_pages(*, default: bool) -> dict[str, list[st.Page]]:
    return {
        "Jobs": [
            st.Page(ui.SUBMIT_PAGE, title="Submit", icon=":material/send:", default=default),
            st.Page("dashboard/compare.py", title="Compare", icon=":material/compare_arrows:"),
            st.Page("dashboard/batches.py", title="Batches", icon=":material/dataset:"),
            st.Page("dashboard/outputs.py", title="Outputs", icon=":material/list_alt:"),
            st.Page(ui.DETAIL_PAGE, title="Output", icon=":material/article:", url_path="output"),
        ],
        "Quality": [
            st.Page("dashboard/analytics.py", title="Analytics", icon=":material/insights:"),
            st.Page("dashboard/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
            st.Page("dashboard/review.py", title="Review", icon=":material/rate_review:"),
        ],
        "Setup": [
            st.Page("dashboard/templates.py", title="Templates", icon=":material/description:"),
            st.Page("dashboard/agents.py", title="Agents", icon=":material/smart_toy:"),
            st.Page("dashboard/queues.py", title="Queues", icon=":material/stacks:"),
            st.Page(ui.LIMITS_PAGE, title="Limits", icon=":material/traffic:"),
            st.Page("dashboard/judges.py", title="Judges", icon=":material/gavel:"),
            st.Page("dashboard/reasons.py", title="Reasons", icon=":material/label:"),
        ],
    }


def current_page() -> st.Page:
    """The page to run now. Signed out, every page is known (hidden) so that a link to one is
    recognised: it is remembered with its query parameters and the sign-in page shown instead."""
    with ui.database_guard():
        user = auth.current_user()
    if user is not None:
        auth.account_box(user)
        return st.navigation(_app_pages(default=True))
    sign_in = st.Page(SIGN_IN_PAGE, title="Sign in", icon=":material/login:", default=True)
    hidden = [page for group in _app_pages(default=False).values() for page in group]
    chosen = st.navigation([sign_in, *hidden], position="hidden")
    if chosen is not sign_in:
        auth.remember_wanted_page(chosen, dict(st.query_params))
        st.switch_page(sign_in)
    return chosen
