"""Compare says up front which models it can use and how to add one, starts with two offline
models selected so that a first click compares, and says what is missing as Submit does: once,
after the person has typed or clicked."""

from __future__ import annotations

import re

import pytest
import streamlit as st

from db import outputs as outputs_db
from tasks import comparisons

COMPARE = "dashboard/compare.py"


def _info(at) -> str:
    return " ".join(str(e.value) for e in at.main.get("info"))


def test_lists_the_usable_models_and_how_to_add_one(app_as, analyst):
    at = app_as(analyst, COMPARE)
    assert not at.exception
    info = _info(at)
    for model in ("offline/echo", "offline/brief", "offline/verbose", "offline/flaky"):
        assert model in info
    assert "OPENAI_API_KEY" in info and "restart" in info
    assert "gpt-4o-mini" not in info


def _errors(at) -> list[str]:
    return [e.value for e in at.main.get("error")]


def _nothing_queued(pool, analyst) -> bool:
    with pool.connection() as conn:
        return not outputs_db.list_outputs(conn, limit=10) and not comparisons.list_comparisons(
            pool, analyst
        )


def test_opens_without_an_error_and_names_what_to_fill_in_once_clicked(app_as, pool, analyst):
    at = app_as(analyst, COMPARE)
    assert not at.exception
    assert _errors(at) == []
    assert "The prompt appears here once the variables are filled in." in [
        c.value for c in at.main.get("caption")
    ]
    at.button(key="compare_submit").click().run()
    assert not at.exception
    assert _errors(at) == ["Fill in: concept"]
    assert not at.query_params.get("id")
    assert _nothing_queued(pool, analyst)


def test_missing_variables_are_said_once_after_typing(app_as, pool, analyst):
    at = app_as(analyst, COMPARE)
    at.text_area(key="compare_template").input("Explain {{ concept }} to {{ audience }}").run()
    assert _errors(at) == ["Fill in: audience, concept"]
    at.text_area(key="compare_var_concept").input("recursion").run()
    assert _errors(at) == ["Fill in: audience"]
    at.button(key="compare_submit").click().run()
    assert not at.exception
    assert _errors(at) == ["Fill in: audience"]
    assert _nothing_queued(pool, analyst)
    at.text_area(key="compare_var_audience").input("a child").run()
    assert _errors(at) == []
    assert "Explain recursion to a child" in [c.value for c in at.main.get("code")]


def test_a_worker_with_a_provider_key_adds_its_models(
    app_as, analyst, monkeypatch: pytest.MonkeyPatch, catalog_of_this_process
):
    at = app_as(analyst, COMPARE)
    assert "gpt-4o-mini" not in at.multiselect(key="compare_models").options
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    catalog_of_this_process()  # a worker holding the key starts
    st.cache_data.clear()  # the page's model list is cached for 10 s
    at = app_as(analyst, COMPARE)
    assert "gpt-4o-mini" in _info(at)
    assert "gpt-4o-mini" in at.multiselect(key="compare_models").options


def test_the_first_click_compares_two_offline_models(app_as, pool, analyst):
    at = app_as(analyst, COMPARE)
    assert at.multiselect(key="compare_models").value == ["offline/brief", "offline/verbose"]
    for field in at.text_area:
        if str(field.key).startswith("compare_var_"):
            field.input("recursion")
    at.run()
    at.button(key="compare_submit").click().run()
    assert not at.exception
    assert not at.main.get("error"), [e.value for e in at.main.get("error")]
    assert at.query_params.get("id")
    with pool.connection() as conn:
        models = sorted(o.model for o in outputs_db.list_outputs(conn, limit=10))
    assert models == ["offline/brief", "offline/verbose"]


async def test_answer_latency_below_a_second_reads_in_milliseconds(
    app_as, pool, analyst, run_worker
):
    at = app_as(analyst, COMPARE)
    for field in at.text_area:
        if str(field.key).startswith("compare_var_"):
            field.input("recursion")
    at.run()
    at.button(key="compare_submit").click().run()
    await run_worker()
    at.run()
    captions = " ".join(str(c.value) for c in at.caption)
    assert re.search(r"\b\d+ ms · \$0\b", captions), captions
    assert "0.00 s" not in captions
