"""Sign in: with the identity provider, or with a user name and an API token."""

from __future__ import annotations

import importlib.util

import streamlit as st

from dashboard import auth

st.title(":material/login: Sign in to LLM Jobs", anchor=False)

if auth.mode() == "oidc":
    email = st.user.get("email") if st.user.get("is_logged_in") else None
    if email:
        st.error(
            f"No LLM Jobs account has the e-mail address {email}. Ask an admin to create one "
            f"(`llmjobs users create NAME --email {email}`).",
            icon=":material/person_off:",
        )
        st.button("Sign out", icon=":material/logout:", on_click=auth.sign_out)
    elif importlib.util.find_spec("authlib") is None:
        st.error(
            "Signing in with an identity provider needs Authlib: "
            "`pip install 'streamlit[auth]'`, then restart the dashboard.",
            icon=":material/error:",
        )
    else:
        st.write("Sign in with your organisation's account.")
        st.button("Sign in", type="primary", icon=":material/login:", on_click=st.login)
else:
    st.write("Use your user name and one of your API tokens (`llmjobs tokens create NAME`).")
    with st.form("sign_in"):
        name = st.text_input("User name", key="sign_in_name")
        token = st.text_input("API token", type="password", key="sign_in_token")
        submitted = st.form_submit_button(
            "Sign in", type="primary", icon=":material/login:", key="sign_in_submit"
        )
    if submitted:
        if auth.sign_in_with_token(name, token):
            auth.open_wanted_page()
        st.error("Unknown user name or token.", icon=":material/error:")
