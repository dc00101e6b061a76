"""Who is using the dashboard: token sign-in, single-user mode, the identity provider's button,
and a database that is down."""

from __future__ import annotations

import importlib.util

from streamlit.testing.v1 import AppTest

from tasks import accounts
from tasks.testing import create_test_llm_output
from tests.dashboard.conftest import APP, TIMEOUT


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def test_token_sign_in_then_sign_out(pool, analyst, database_url):
    token = accounts.create_token(pool, "ana")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "Sign in" in at.title[0].value
    at.text_input(key="sign_in_name").input("ana")
    at.text_input(key="sign_in_token").input("llmj_wrong")
    at.button(key="sign_in_submit").click().run()
    assert "Unknown user name or token." in _texts(at.error)
    at.text_input(key="sign_in_name").input("otto")  # a real token of someone else's name
    at.text_input(key="sign_in_token").input(token)
    at.button(key="sign_in_submit").click().run()
    assert "Unknown user name or token." in _texts(at.error)
    assert "signed_in_user_id" not in at.session_state

    at.text_input(key="sign_in_name").input("ana")
    at.text_input(key="sign_in_token").input(token)
    at.button(key="sign_in_submit").click().run()
    assert not at.exception
    assert at.session_state["signed_in_user_id"] == analyst.id
    assert "Submit" in at.title[0].value
    assert "ana" in _texts(at.sidebar.markdown)
    at.sidebar.button(key="sign_out").click().run()
    assert "Sign in" in at.title[0].value
    assert "signed_in_user_id" not in at.session_state


def test_single_user_mode_signs_in_the_local_admin(pool, database_url, settings_env):
    settings_env(SINGLE_USER="1", USER="boss")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "Submit" in at.title[0].value
    assert "Single-user mode" in _texts(at.sidebar.caption)
    assert "boss" in _texts(at.sidebar.markdown)
    boss = next(u for u in accounts.list_users(pool) if u.name == "boss")
    assert boss.is_admin


def test_identity_provider_configured_shows_its_sign_in(database_url):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "a-test-secret",
        "client_id": "dashboard",
        "client_secret": "secret",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    }
    at.run()
    assert not at.exception
    assert "Sign in" in at.title[0].value
    assert not at.text_input  # no token form when an identity provider is configured
    if importlib.util.find_spec("authlib"):
        assert [b.label for b in at.button] == ["Sign in"]
    else:
        assert "needs Authlib" in _texts(at.error)


def test_database_down_says_so_without_a_stack_trace(monkeypatch, settings_env):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/nowhere")
    monkeypatch.setenv("LLMJOBS_DASHBOARD_DB_TIMEOUT", "0.5")
    settings_env(SINGLE_USER="1")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "The database cannot be reached" in _texts(at.error)


def test_a_link_opened_signed_out_lands_on_its_page_after_sign_in(pool, analyst, database_url):
    output = create_test_llm_output(pool, analyst)
    token = accounts.create_token(pool, "ana")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.query_params["id"] = str(output.id)
    at.switch_page("dashboard/output_detail.py").run()  # /output?id=N, signed out
    assert not at.exception
    assert "Sign in" in at.title[0].value
    assert "Output #" not in _texts(at.title)
    assert "id" not in at.query_params
    at.switch_page("dashboard/sign_in.py")  # where the browser's address now points
    at.text_input(key="sign_in_name").input("ana")
    at.text_input(key="sign_in_token").input(token)
    at.button(key="sign_in_submit").click().run()
    assert not at.exception
    assert at.title[0].value.endswith(f"Output #{output.id}")
    assert at.query_params["id"] == str(output.id)
