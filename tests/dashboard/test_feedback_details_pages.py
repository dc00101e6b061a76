"""Reasons, comments and corrected answers in the dashboard (AppTest): the Output page saves them
with one Save and shows the history; Setup › Reasons lets admins add, describe, reorder and
remove reasons, refusing bad ones next to the control; the Outputs page finds outputs by their
comment and shows the reasons and the comment in each row."""

from __future__ import annotations

import json

import streamlit as st

from tasks import feedback
from tasks import outputs as jobs
from tasks.testing import create_test_llm_output

DETAIL = "dashboard/output_detail.py"
REASONS = "dashboard/reasons.py"
OUTPUTS = "dashboard/outputs.py"


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements).replace("\\", "")


def _names(pool) -> list[str]:
    return [r.name for r in feedback.list_reasons(pool)]


def _events(pool, output_id: int) -> int:
    with pool.connection() as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM feedback_events WHERE output_id = %s", (output_id,)
        ).fetchone()["n"]


def test_output_page_saves_reasons_comment_and_corrected_answer(app_as, pool, analyst, admin):
    output = create_test_llm_output(pool, analyst)
    key = f"details_{output.id}"
    at = app_as(analyst, DETAIL, id=str(output.id))
    assert not at.exception
    assert at.multiselect(key=f"{key}_reasons").options[:2] == [
        "wrong · says something false",
        "incomplete · leaves out part of what was asked",
    ]
    at.button(key="feedback_thumbs_down").click().run()
    at.multiselect(key=f"{key}_reasons").select("wrong").select("too long")
    at.text_area(key=f"{key}_comment").input("The date is off by a century.")
    at.text_area(key=f"{key}_corrected").input("It opened in 1889.")
    at.button(key=f"{key}_save").click().run()
    assert not at.exception
    saved = jobs.get_output(pool, output.id, analyst)
    assert saved.feedback == "thumbs_down"
    assert saved.feedback_reasons == ["wrong", "too long"]
    assert (saved.feedback_comment, saved.corrected_answer) == (
        "The date is off by a century.",
        "It opened in 1889.",
    )
    assert "Saved: reasons, comment, corrected answer." in _texts(at.success)

    # the history: who, when, what changed; the comment in full
    history = at.dataframe[0].value
    assert list(history["Who"]) == ["ana", "ana"]
    assert list(history["Changed"]) == ["Thumbs", "Reasons, Comment, Corrected answer"]
    assert list(history["Thumbs"]) == ["none → down", "down"]
    assert history["Comment"].iloc[-1] == "The date is off by a century."

    # only the part changed is sent: clearing the comment keeps the rest
    at.text_area(key=f"{key}_comment").input("")
    at.button(key=f"{key}_save").click().run()
    saved = jobs.get_output(pool, output.id, analyst)
    assert saved.feedback_comment is None and saved.corrected_answer == "It opened in 1889."
    assert saved.feedback_reasons == ["wrong", "too long"]
    events = feedback.feedback_events(pool, output.id, analyst)
    assert events[-1].changed == ["comment"]

    # saving nothing changed writes nothing
    at.button(key=f"{key}_save").click().run()
    assert "Nothing changed" in _texts(at.info)
    assert _events(pool, output.id) == 3

    # an admin sees the history of someone else's output, with the names
    at = app_as(admin, DETAIL, id=str(output.id))
    assert list(at.dataframe[0].value["Who"]) == ["ana"] * 3


def test_output_page_refuses_bad_text_next_to_the_form(app_as, pool, analyst):
    output = create_test_llm_output(pool, analyst)
    key = f"details_{output.id}"
    at = app_as(analyst, DETAIL, id=str(output.id))
    # the browser holds each text to its length; a NUL can still be pasted
    assert at.text_area(key=f"{key}_comment").max_chars == feedback.MAX_COMMENT_CHARS
    assert at.text_area(key=f"{key}_corrected").max_chars == feedback.MAX_CORRECTED_CHARS
    at.text_area(key=f"{key}_comment").input("fine")
    at.text_area(key=f"{key}_corrected").input("a\x00b")
    at.button(key=f"{key}_save").click().run()
    assert not at.exception
    assert "Corrected answer: must not contain NUL characters" in _texts(at.error)
    assert _events(pool, output.id) == 0
    assert jobs.get_output(pool, output.id, analyst).feedback_comment is None


def test_a_reason_off_the_list_stays_unless_the_reasons_change(app_as, pool, analyst, admin):
    feedback.add_reason(pool, admin, "vague", "says little")
    output = create_test_llm_output(pool, analyst)
    feedback.set_feedback(pool, output.id, analyst, reasons=["vague", "wrong"])
    feedback.remove_reason(pool, admin, "vague")
    key = f"details_{output.id}"
    at = app_as(analyst, DETAIL, id=str(output.id))
    assert "Also tagged vague" in _texts(at.caption)
    assert at.multiselect(key=f"{key}_reasons").value == ["wrong"]
    at.text_area(key=f"{key}_comment").input("still vague")
    at.button(key=f"{key}_save").click().run()
    assert jobs.get_output(pool, output.id, analyst).feedback_reasons == ["wrong", "vague"]


def test_reasons_page_is_read_only_for_analysts(app_as, analyst):
    at = app_as(analyst, REASONS)
    assert not at.exception
    assert list(at.dataframe[0].value["Reason"])[:2] == ["wrong", "incomplete"]
    assert "Admins change this list" in _texts(at.caption)
    assert not at.text_input


def test_reasons_page_adds_describes_reorders_and_removes(app_as, pool, admin):
    at = app_as(admin, REASONS)
    assert not at.exception
    at.text_input(key="reasons_set_name").input("Out Dated")
    at.text_input(key="reasons_set_description").input("no longer true")
    at.button(key="FormSubmitter:reasons_set-Save").click().run()
    assert not at.exception
    assert _names(pool)[-1] == "out dated"
    assert "Reason out dated saved." in _texts(at.success)
    assert at.text_input(key="reasons_set_name").value == ""

    at.selectbox(key="reasons_chosen").set_value("out dated").run()
    at.button(key="reasons_up").click().run()
    assert _names(pool)[-2:] == ["out dated", "great"]
    assert next(r for r in feedback.list_reasons(pool) if r.name == "out dated").description == (
        "no longer true"
    )
    at.selectbox(key="reasons_chosen").set_value("wrong").run()
    at.button(key="reasons_down").click().run()
    assert _names(pool)[:2] == ["incomplete", "wrong"]

    at.selectbox(key="reasons_chosen").set_value("out dated").run()
    at.button(key="reasons_remove").click().run()
    assert "Remove out dated from the list?" in _texts(at.warning)
    assert "out dated" in _names(pool)  # not before the confirmation
    at.button(key="reasons_remove_yes").click().run()
    assert "out dated" not in _names(pool)
    assert "removed" in _texts(at.success)


def test_reasons_page_refuses_bad_input_next_to_the_control(app_as, pool, admin):
    before = feedback.list_reasons(pool)
    at = app_as(admin, REASONS)
    for field, value, message in [
        ("name", "semi;colon", "A reason is a-z, 0-9"),
        ("name", "-dash", "A reason is a-z, 0-9"),
        ("description", "a\x00b", "Must be text without NUL"),
        ("position", 5000, "Must be a whole number from 0 to 1000"),
    ]:
        at.text_input(key="reasons_set_name").input("semi;colon" if field == "name" else "ok")
        if field == "name":
            at.text_input(key="reasons_set_name").input(value)
        if field == "description":
            at.text_input(key="reasons_set_description").input(value)
        if field == "position":
            at.number_input(key="reasons_set_position").set_value(value)
        at.button(key="FormSubmitter:reasons_set-Save").click().run()
        assert not at.exception
        assert message in _texts(at.error), (field, _texts(at.error))
        at.text_input(key="reasons_set_description").input("")
        at.number_input(key="reasons_set_position").set_value(None)
    assert feedback.list_reasons(pool) == before


def test_outputs_page_finds_outputs_by_their_comment(app_as, pool, analyst, other_analyst, admin):
    mine = create_test_llm_output(pool, analyst)
    other = create_test_llm_output(pool, analyst)
    create_test_llm_output(pool, analyst)  # no comment
    theirs = create_test_llm_output(pool, other_analyst)
    feedback.set_feedback(
        pool, mine.id, analyst, "thumbs_down", reasons=["wrong"], comment="50% too long"
    )
    feedback.set_feedback(pool, other.id, analyst, comment="Fine but 50 words")
    feedback.set_feedback(pool, theirs.id, other_analyst, comment="50% off")

    at = app_as(analyst, OUTPUTS)
    assert not at.exception
    rows = {r["id"]: r for r in at.dataframe[0].value.to_dict("records")}
    assert rows[mine.id]["feedback"] == "down · wrong"
    assert rows[mine.id]["comment"] == "50% too long"
    assert len(rows) == 3

    at.text_input(key="outputs_comment").input("50%").run()
    assert not at.exception
    assert list(at.dataframe[0].value["id"]) == [mine.id]  # % is no wildcard; not otto's
    at.text_input(key="outputs_comment").input("FINE").run()
    assert list(at.dataframe[0].value["id"]) == [other.id]
    at.text_input(key="outputs_comment").input("nowhere").run()
    assert not at.dataframe or len(at.dataframe[0].value) == 0

    at = app_as(admin, OUTPUTS)
    at.text_input(key="outputs_comment").input("50%").run()
    assert list(at.dataframe[0].value["id"]) == [theirs.id, mine.id]


def test_outputs_table_with_reasons_and_comment_fits_a_1440_px_screen(app_as, pool, analyst, admin):
    create_test_llm_output(pool, analyst)
    for viewer in (analyst, admin):
        st.cache_data.clear()
        at = app_as(viewer, OUTPUTS)
        table = at.dataframe[0]
        config = json.loads(table.proto.columns)
        assert "comment" in table.value.columns
        assert sum(config[name]["width"] for name in table.value.columns) <= 900


def test_output_page_shows_judge_verdicts_apart_from_feedback(app_as, pool, analyst, admin):
    from tasks import judges

    output = create_test_llm_output(pool, analyst, feedback="thumbs_up")
    judge = judges.add_judge(pool, admin, name="strict", model="offline/echo")
    run = judges.run_judge(pool, admin, judge.id, judges.JudgeScope(user_id=analyst.id))
    [judge_output_id] = run.judge_output_ids
    answer = json.dumps({"verdict": "fail", "reason": "misses the base case"})
    with pool.connection() as conn:
        conn.execute(
            "UPDATE llm_outputs SET status = 'completed', raw_response = %s, parsed_output = %s,"
            " schema_valid = true, schema_first_try = true, completed_at = now() WHERE id = %s",
            (answer, answer, judge_output_id),
        )
    at = app_as(analyst, DETAIL, id=str(output.id))
    assert not at.exception
    [verdicts] = [d.value for d in at.dataframe if "Verdict" in d.value.columns]
    assert verdicts.to_dict("records") == [
        {"Judge": "strict", "Verdict": "fail", "Reason": "misses the base case"}
    ]
    # a verdict is no feedback: the thumbs stay, and no feedback change is recorded
    assert jobs.get_output(pool, output.id, analyst).feedback == "thumbs_up"
    assert _events(pool, output.id) == 0
