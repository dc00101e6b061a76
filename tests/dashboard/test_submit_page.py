"""The Submit page: variables become fields, the preview renders, a missing variable is shown
before submitting and nothing is queued; a submission is queued and followed; JSON context;
starting from an agent."""

from __future__ import annotations

import json

import streamlit as st

from tasks import agents as agent_cases
from tasks import outputs as jobs
from tasks.llm.rendering import MAX_CONTEXT_DEPTH

SUBMIT = "dashboard/submit.py"


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def test_the_page_opens_without_an_error(app_as, analyst):
    at = app_as(analyst)
    assert not at.exception
    assert not at.error
    assert "once the variables are filled in" in _texts(at.caption)


def test_missing_variable_is_shown_once_inline_and_nothing_is_queued(app_as, pool, analyst):
    at = app_as(analyst)
    at.text_area(key="submit_template").input("Explain {{ concept }} to {{ audience }}").run()
    assert {t.key for t in at.text_area} >= {"submit_var_concept", "submit_var_audience"}
    at.text_area(key="submit_var_concept").input("recursion").run()
    assert [e.value for e in at.error] == ["Fill in: audience"]
    at.button(key="submit_button").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Fill in: audience"]
    assert jobs.list_outputs(pool, analyst) == []


def test_submit_without_typing_names_what_to_fill_in_once(app_as, pool, analyst):
    at = app_as(analyst)
    at.button(key="submit_button").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Fill in: concept"]
    assert jobs.list_outputs(pool, analyst) == []


def test_template_error_names_line_column_and_what_was_expected(app_as, pool, analyst):
    at = app_as(analyst)
    at.text_area(key="submit_template").input("Explain\n{{ concept to a child").run()
    assert [e.value for e in at.error] == [
        "The template has a mistake on line 2, column 12: expected `}}` but found `to`."
    ]
    at.text_area(key="submit_template").input("Explain {{ concept ").run()
    assert [e.value for e in at.error] == [
        "The template has a mistake on line 1, column 19: the template ends too early: "
        "expected `}}`."
    ]
    at.button(key="submit_button").click().run()
    assert len(at.error) == 1
    assert jobs.list_outputs(pool, analyst) == []


def test_submit_queues_the_job_and_follows_it(app_as, pool, analyst, catalog_of_this_process):
    at = app_as(analyst)
    at.text_area(key="submit_template").input("Explain {{ concept }} to {{ audience }}").run()
    at.text_area(key="submit_var_concept").input("recursion").run()
    at.text_area(key="submit_var_audience").input("a child").run()
    assert not at.error
    assert "Explain recursion to a child" in _texts(at.code)
    at.selectbox(key="submit_format").set_value("markdown")
    at.selectbox(key="submit_queue").set_value("high").run()
    at.button(key="submit_button").click().run()
    assert not at.exception
    [output] = jobs.list_outputs(pool, analyst)
    assert output.status == "pending" and output.job_id is not None
    assert output.context == {"concept": "recursion", "audience": "a child"}
    assert (output.model, output.format, output.queue) == ("offline/echo", "markdown", "high")
    assert at.session_state["submit_following"] == output.id
    assert f"**Output #{output.id}**" in _texts(at.markdown)
    assert "Queued. No worker is running: the job waits until one starts" in _texts(at.caption)
    catalog_of_this_process()  # a worker starts
    st.cache_data.clear()  # (the page reads the workers at most every 10 s)
    at.run()
    assert "Queued: waiting for a worker." in _texts(at.caption)


def test_json_context_for_nested_values(app_as, pool, analyst):
    at = app_as(analyst)
    at.text_area(key="submit_template").input("Hello {{ person.name }} from {{ city }}").run()
    at.text_area(key="submit_var_city").input("Oslo").run()
    at.toggle(key="submit_json").set_value(True).run()
    assert json.loads(at.text_area(key="submit_context_json").value) == {
        "city": "Oslo",
        "person": "",
    }
    at.text_area(key="submit_context_json").input('{"person": {"name": "Ana"}, "city": "Oslo"}')
    at.run()
    assert "Hello Ana from Oslo" in _texts(at.code)
    at.text_area(key="submit_context_json").input('{"person": ').run()
    assert "The context is not valid JSON" in _texts(at.error)
    at.button(key="submit_button").click().run()
    assert len(at.error) == 1
    at.text_area(key="submit_context_json").input('{"person": {"name": "Ana"}, "city": "Oslo"}')
    at.button(key="submit_button").click().run()
    [output] = jobs.list_outputs(pool, analyst)
    assert output.context == {"person": {"name": "Ana"}, "city": "Oslo"}


def test_fetcher_fills_variables(app_as, pool, analyst):
    at = app_as(analyst)
    at.text_area(key="submit_template").input("Today is {{ today }}").run()
    assert "Fill in: today" in _texts(at.error)
    at.selectbox(key="submit_fetcher").set_value("current_time").run()
    assert not at.error
    assert "Today is 20" in _texts(at.code)
    at.button(key="submit_button").click().run()
    [output] = jobs.list_outputs(pool, analyst)
    assert "today" in output.context


def test_start_from_an_agent(app_as, pool, analyst):
    agent = agent_cases.create_agent(
        pool,
        analyst,
        name="Summariser",
        default_model="offline/echo",
        default_format="json",
        system_prompt="You summarise.",
    )
    at = app_as(analyst, SUBMIT, agent=str(agent.id))
    assert not at.exception
    assert at.selectbox(key="submit_agent").value == agent.id
    assert at.selectbox(key="submit_format").value == "json"
    assert "You summarise." in _texts(at.text)
    at.text_area(key="submit_var_concept").input("tides").run()
    at.button(key="submit_button").click().run()
    [output] = jobs.list_outputs(pool, analyst)
    assert (output.agent_id, output.format, output.system_prompt) == (
        agent.id,
        "json",
        "You summarise.",
    )


def test_an_empty_value_is_missing_in_both_context_modes(app_as, pool, analyst):
    at = app_as(analyst)
    at.text_area(key="submit_template").input("Summarise {{ doc }} for {{ audience }}").run()
    at.text_area(key="submit_var_audience").input("managers").run()
    assert "Fill in: doc" in _texts(at.error)
    at.toggle(key="submit_json").set_value(True).run()
    at.text_area(key="submit_context_json").input('{"doc": "", "audience": "managers"}').run()
    assert "Fill in: doc" in _texts(at.error)
    at.button(key="submit_button").click().run()
    assert jobs.list_outputs(pool, analyst) == []


def test_a_method_of_a_value_is_undefined_in_the_preview(app_as, pool, analyst):
    at = app_as(analyst)
    at.text_area(key="submit_template").input("Summarise {{ doc.title }} for {{ audience }}").run()
    at.toggle(key="submit_json").set_value(True).run()
    at.text_area(key="submit_context_json").input('{"doc": "q3", "audience": "managers"}').run()
    assert "Undefined value: 'title' is a method of Python's str" in _texts(at.error)
    assert "built-in method" not in _texts(at.code)
    at.button(key="submit_button").click().run()
    assert not at.exception
    assert jobs.list_outputs(pool, analyst) == []


def test_a_context_nested_too_deeply_is_refused(app_as, pool, analyst):
    at = app_as(analyst)
    at.text_area(key="submit_template").input("Hello {{ a }}").run()
    at.toggle(key="submit_json").set_value(True).run()
    for levels in (MAX_CONTEXT_DEPTH + 1, 10_000):
        deep = '{"a":' * (levels - 1) + '{"a":"x"' + "}" * levels
        at.text_area(key="submit_context_json").input(deep).run()
        assert not at.exception
        assert f"is nested too deeply (at most {MAX_CONTEXT_DEPTH} levels" in _texts(at.error)
    at.button(key="submit_button").click().run()
    assert jobs.list_outputs(pool, analyst) == []
