"""Who is using the dashboard.

Three ways, the first that applies: an OpenID Connect provider configured under `[auth]` in
`.streamlit/secrets.toml` (people are matched to users by e-mail); single-user mode
(LLMJOBS_SINGLE_USER=1: the local admin LLMJOBS_USER, no sign-in); otherwise a user name and one
of that user's API tokens. Only the user's id is kept in the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import streamlit as st

from dashboard import deps
from tasks import admin
from tasks.config import get_settings

if TYPE_CHECKING:
    from db.models import User

Mode = Literal["oidc", "single-user", "token"]
_USER_ID = "signed_in_user_id"
_WANTED = "page_wanted_before_sign_in"


def mode() -> Mode:
    if _oidc_configured():
        return "oidc"
    if get_settings().single_user:
        return "single-user"
    return "token"


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets.toml at all
        return False


def current_user() -> User | None:
    """The signed-in user, or None when nobody is (or the identity matches no user)."""
    pool = deps.pool()
    match mode():
        case "oidc":
            if not st.user.get("is_logged_in") or not st.user.get("email"):
                return None
            return deps.user_by_email(pool, str(st.user.get("email")))
        case "single-user":
            return deps.local_user(pool, get_settings().user)
        case _:
            user_id = st.session_state.get(_USER_ID)
            return deps.user_by_id(pool, user_id) if isinstance(user_id, int) else None


def require_user() -> User:
    """The signed-in user; stops the page when there is none (the sign-in page is shown then)."""
    user = current_user()
    if user is None:
        st.warning("Sign in first.", icon=":material/login:")
        st.stop()
    return user


def sign_in_with_token(name: str, token: str) -> bool:
    """Check a user name and API token; remember the user in this session when they match."""
    user = admin.sign_in(deps.pool(), name, token)
    if user is None:
        return False
    st.session_state[_USER_ID] = user.id
    return True


def remember_wanted_page(page: st.Page, query_params: dict[str, str]) -> None:
    """Keep the page someone opened while signed out (and its query parameters) for after."""
    st.session_state[_WANTED] = (page, query_params)


def open_wanted_page() -> None:
    """Just signed in: go to the page they opened while signed out, else rerun as usual."""
    wanted = st.session_state.pop(_WANTED, None)
    if wanted is None:
        st.rerun()
    page, query_params = wanted
    st.switch_page(page, query_params=query_params)


def sign_out() -> None:
    if mode() == "oidc":
        st.logout()
    st.session_state.pop(_USER_ID, None)


def account_box(user: User) -> None:
    """Who is signed in, how, and the way out (in the sidebar)."""
    with st.sidebar:
        role = "admin" if user.is_admin else "analyst"
        st.markdown(f":material/person: **{user.name}** · {role}")
        if mode() == "single-user":
            st.caption(":material/info: Single-user mode: signed in as the local admin.")
        else:
            st.button("Sign out", icon=":material/logout:", on_click=sign_out, key="sign_out")
