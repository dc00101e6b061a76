"""Exports carry the feedback that explains itself: the golden set gives the corrected answer
when there is one; the JSONL export and the feedback CSV carry reasons, comment, corrected answer
and the judges' verdicts (only those whose answer is in), the CSV's cells still safe to open in a
spreadsheet."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tasks import analytics, exports, feedback
from tasks.judges import VERDICT_SCHEMA
from tasks.testing import create_test_llm_output
from tests.support.hostile import FORMULAS, neutralised


def _lines(pool, user, **kw) -> list[dict]:
    return [json.loads(line) for line in exports.export_jsonl(pool, user, **kw)]


def _csv(pool, user) -> list[dict]:
    text = analytics.feedback_csv(pool, user, analytics.output_filter())
    return list(csv.DictReader(io.StringIO(text)))


def _judge(pool, name: str, created_by) -> int:
    with pool.connection() as conn:
        return conn.execute(
            "INSERT INTO judges (name, model, rubric, created_by) VALUES (%s, %s, %s, %s) "
            "RETURNING id",
            (name, "offline/echo", "Is {{ answer }} right?", created_by.id),
        ).fetchone()["id"]


def _verdict(pool, judge_id, output_id, judge_user, answer, *, status="completed"):
    """A judge's job (an ordinary json output checked against the verdict schema) and its row."""
    judged = create_test_llm_output(
        pool,
        judge_user,
        format="json",
        status=status,
        raw_response=answer if status == "completed" else None,
        parsed_output=json.loads(answer) if status == "completed" else None,
        json_schema=VERDICT_SCHEMA,
    )
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO judge_verdicts (judge_id, output_id, judge_output_id) VALUES (%s, %s, %s)",
            (judge_id, output_id, judged.id),
        )
    return judged


@pytest.fixture
def rated(pool, analyst, admin):
    """ana's outputs: up (no correction), down with reasons, a comment and a corrected answer,
    unrated with a corrected answer, down with nothing more; judged by two judges whose answers
    are in, one whose answer failed validation and one whose job failed."""
    up = create_test_llm_output(pool, analyst, raw_response="Paris.")
    feedback.set_feedback(pool, up.id, analyst, "thumbs_up", reasons=["great"])
    down = create_test_llm_output(pool, analyst, raw_response="Lyon.")
    feedback.set_feedback(
        pool,
        down.id,
        analyst,
        "thumbs_down",
        reasons=["wrong", "too long"],
        comment="the capital is Paris",
        corrected_answer="Paris.",
    )
    fixed = create_test_llm_output(pool, analyst, raw_response="Pariss.")
    feedback.set_feedback(pool, fixed.id, analyst, corrected_answer="Paris.")
    plain = create_test_llm_output(pool, analyst, feedback="thumbs_down", raw_response="Rome.")
    accuracy, style = _judge(pool, "accuracy", admin), _judge(pool, "style", admin)
    strict, broken = _judge(pool, "strict", admin), _judge(pool, "broken", admin)
    _verdict(pool, accuracy, down.id, admin, '{"verdict": "fail", "reason": "Lyon is not it"}')
    _verdict(pool, style, down.id, admin, '{"verdict": "pass", "reason": "short"}')
    _verdict(pool, strict, down.id, admin, '{"verdict": "maybe", "reason": "unsure"}')
    _verdict(pool, broken, down.id, admin, None, status="failed")
    _verdict(pool, accuracy, up.id, admin, '{"verdict": "pass", "reason": "right"}')
    return {"up": up, "down": down, "fixed": fixed, "plain": plain}


def test_golden_set_gives_the_corrected_answer_when_there_is_one(pool, analyst, rated):
    golden = {r["id"]: r for r in _lines(pool, analyst, kind="golden")}
    # thumbs-up answers, and every output with a corrected answer whatever its thumb
    assert list(golden) == [rated["up"].id, rated["down"].id, rated["fixed"].id]
    up, down, fixed = (golden[rated[k].id] for k in ("up", "down", "fixed"))
    assert up["corrected"] is False and up["output"] == "Paris." and "original_answer" not in up
    assert down["corrected"] is True and down["output"] == "Paris."
    assert down["messages"][-1] == {"role": "assistant", "content": "Paris."}
    assert down["original_answer"] == "Lyon." and down["feedback"] == "thumbs_down"
    assert fixed["corrected"] is True and fixed["original_answer"] == "Pariss."
    # the eval set keeps the model's answer, the correction beside it
    evals = {r["id"]: r for r in _lines(pool, analyst, kind="eval")}
    assert list(evals) == [rated["down"].id, rated["plain"].id]
    assert evals[rated["down"].id]["output"] == "Lyon."
    assert evals[rated["down"].id]["corrected"] is False
    assert evals[rated["down"].id]["corrected_answer"] == "Paris."


def test_golden_set_decodes_a_json_correction_and_keeps_text_that_is_not_json(pool, analyst):
    good = create_test_llm_output(pool, analyst, format="json", raw_response='{"city": "Lyon"}')
    paris = '{"city": "Paris"}'
    feedback.set_feedback(pool, good.id, analyst, "thumbs_down", corrected_answer=paris)
    loose = create_test_llm_output(pool, analyst, format="json", raw_response='{"city": "Lyon"}')
    feedback.set_feedback(pool, loose.id, analyst, "thumbs_down", corrected_answer="Paris")
    golden = {r["id"]: r for r in _lines(pool, analyst, kind="golden")}
    assert golden[good.id]["output"] == {"city": "Paris"}
    assert golden[good.id]["messages"][-1]["content"] == paris
    assert golden[loose.id]["output"] == "Paris" and golden[loose.id]["corrected"] is True


def test_jsonl_lines_carry_reasons_comment_correction_and_verdicts(pool, analyst, rated):
    lines = {r["id"]: r for r in _lines(pool, analyst)}
    down = lines[rated["down"].id]
    assert down["reasons"] == ["wrong", "too long"]
    assert down["comment"] == "the capital is Paris"
    assert down["corrected_answer"] == "Paris."
    # the judges whose answer is in, by name: not the invalid one, not the failed job
    assert down["judge_verdicts"] == [
        {"judge": "accuracy", "verdict": "fail", "reason": "Lyon is not it"},
        {"judge": "style", "verdict": "pass", "reason": "short"},
    ]
    assert lines[rated["up"].id]["judge_verdicts"] == [
        {"judge": "accuracy", "verdict": "pass", "reason": "right"}
    ]
    plain = lines[rated["plain"].id]
    assert (plain["reasons"], plain["comment"], plain["corrected_answer"]) == ([], None, None)
    assert plain["judge_verdicts"] == []
    # the judges' own jobs are the admin's outputs, not in the analyst's export
    assert set(lines) == {rated[k].id for k in ("up", "down", "fixed", "plain")}


def test_feedback_csv_carries_reasons_comment_correction_and_verdicts(pool, analyst, rated):
    rows = {int(r["output_id"]): r for r in _csv(pool, analyst)}
    assert list(next(iter(rows.values())))[-4:] == [
        "reasons",
        "comment",
        "corrected_answer",
        "judge_verdicts",
    ]
    down = rows[rated["down"].id]
    assert down["reasons"] == "wrong; too long"
    assert (down["comment"], down["corrected_answer"]) == ("the capital is Paris", "Paris.")
    assert json.loads(down["judge_verdicts"]) == [
        {"judge": "accuracy", "verdict": "fail", "reason": "Lyon is not it"},
        {"judge": "style", "verdict": "pass", "reason": "short"},
    ]
    assert rows[rated["up"].id]["reasons"] == "great"
    plain = rows[rated["plain"].id]
    assert (plain["reasons"], plain["comment"], plain["judge_verdicts"]) == ("", "", "")
    # rated outputs only: the unrated one with a correction is in the golden set, not here
    assert set(rows) == {rated[k].id for k in ("up", "down", "plain")}


def test_feedback_csv_keeps_formulas_in_comments_and_corrections_as_text(pool, analyst):
    made = []
    for formula in FORMULAS:
        out = create_test_llm_output(pool, analyst)
        feedback.set_feedback(
            pool, out.id, analyst, "thumbs_down", comment=formula, corrected_answer=formula
        )
        made.append(out.id)
    rows = {int(r["output_id"]): r for r in _csv(pool, analyst)}
    assert [rows[i]["comment"] for i in made] == [neutralised(f) for f in FORMULAS]
    assert [rows[i]["corrected_answer"] for i in made] == [neutralised(f) for f in FORMULAS]
    # JSON Lines are never changed
    lines = {r["id"]: r for r in _lines(pool, analyst)}
    assert [lines[i]["comment"] for i in made] == FORMULAS


def test_the_command_exports_the_golden_set_with_corrections(database_url, pool, analyst):
    from tests.integration.test_cli import llmjobs

    out = create_test_llm_output(pool, analyst, raw_response="bad")
    feedback.set_feedback(pool, out.id, analyst, "thumbs_down", corrected_answer="good")
    exported = llmjobs("export", "--kind", "golden", "--user", "ana")
    assert exported.returncode == 0, exported.stderr
    [line] = [json.loads(x) for x in exported.stdout.splitlines()]
    assert (line["id"], line["output"], line["corrected"]) == (out.id, "good", True)
