"""Fixtures for the dashboard's AppTests: the app's entry point by absolute path, caches emptied
between tests (each test has its own database), and an app signed in as a given user."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from db.models import User

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
TIMEOUT = 30


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Token sign-in unless a test says otherwise; no cached rows or pools from another test."""
    monkeypatch.delenv("LLMJOBS_SINGLE_USER", raising=False)
    monkeypatch.chdir(ROOT)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()  # closes the pools of this test's database


@pytest.fixture
def app_as(database_url: str) -> Callable[..., AppTest]:
    """app_as(user, page=None, **query): the dashboard signed in as user (token mode, as after a
    successful sign-in), run once on the page (a path like "dashboard/outputs.py")."""

    def make(user: User | None, page: str | None = None, **query: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        if user is not None:
            at.session_state["signed_in_user_id"] = user.id
        at.run()
        if page:
            for key, value in query.items():
                at.query_params[key] = value
            at.switch_page(page)
            at.run()
        return at

    return make
