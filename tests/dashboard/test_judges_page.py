"""The Judges page (AppTest): admins only; define a judge from the default rubric, a bad rubric
refused naming it with nothing written; run it over a scope (queued as ordinary jobs); verdict
counts and calibration against hand-counted thumbs; the Leaderboard ranks by the judge; an
output's verdicts panel."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tasks import feedback, judges
from tasks import outputs as jobs

PAGE = "dashboard/judges.py"
LEADERBOARD = "dashboard/leaderboard.py"


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements).replace("\\", "")


def _completed(pool, user, word, thumb=None) -> int:
    output_id = jobs.submit(
        pool, user=user, template="Say {{w}}", context={"w": word}, model="offline/echo"
    ).output_id
    with pool.connection() as conn:
        conn.execute(
            "UPDATE llm_outputs SET status = 'completed', prompt = %s, raw_response = %s,"
            " started_at = now(), completed_at = now() WHERE id = %s",
            (f"Say {word}", word, output_id),
        )
    if thumb:
        feedback.set_feedback(pool, output_id, user, thumb)
    return output_id


def _answer(pool, judge_output_id: int, verdict: str) -> None:
    """The judge's job done, as a worker would leave it."""
    answer = {"verdict": verdict, "reason": f"reads {verdict}"}
    with pool.connection() as conn:
        conn.execute(
            "UPDATE llm_outputs SET status = 'completed', raw_response = %s, parsed_output = %s,"
            " schema_valid = true, schema_first_try = true, started_at = now(),"
            " completed_at = now() WHERE id = %s",
            (json.dumps(answer), json.dumps(answer), judge_output_id),
        )


def test_an_analyst_cannot_open_the_judges_page(app_as, analyst):
    at = app_as(analyst, PAGE)
    assert not at.exception
    assert "Admins only" in _texts(at.error)
    assert not at.text_area and not at.main.button


def test_an_admin_defines_a_judge_from_the_default_rubric(app_as, pool, admin):
    at = app_as(admin, PAGE)
    assert not at.exception
    assert at.text_area[0].value == judges.DEFAULT_RUBRIC
    at.text_input(key="judges_form_new_name").input("strict")
    at.selectbox(key="judges_form_new_model").select("offline/echo")
    at.text_area(key="judges_form_new_rubric").input("Judge {{ answer ")
    at.button[0].click().run()
    assert "Rubric: syntax error on line 1" in _texts(at.error)
    assert judges.list_judges(pool, admin) == []

    at.text_area(key="judges_form_new_rubric").input(judges.DEFAULT_RUBRIC)
    at.button[0].click().run()
    assert not at.exception
    [made] = judges.list_judges(pool, admin)
    assert (made.name, made.model, made.rubric) == ("strict", "offline/echo", judges.DEFAULT_RUBRIC)
    assert "Judge strict defined." in _texts(at.success)
    assert at.selectbox(key="judges_pick").value == made.id


def test_a_run_queues_jobs_and_calibration_matches_the_hand_count(
    app_as, pool, admin, analyst, database_url
):
    ids = {
        "up_pass": _completed(pool, analyst, "a", "thumbs_up"),
        "up_fail": _completed(pool, analyst, "b", "thumbs_up"),
        "down_fail": _completed(pool, analyst, "c", "thumbs_down"),
        "unrated": _completed(pool, analyst, "d"),
    }
    judge = judges.add_judge(pool, admin, name="strict", model="offline/echo")
    at = app_as(admin, PAGE)
    at.selectbox(key="judges_pick").select(judge.id).run()
    at.checkbox(key="judges_run_rated").check()
    at.button(key="FormSubmitter:judges_run-Queue judge jobs").click().run()
    assert not at.exception
    assert "3 judge jobs queued in low" in _texts(at.success)
    assert "Waiting" in " ".join(m.label for m in at.metric)
    assert {m.label: m.value for m in at.metric}[":material/schedule: Waiting"] == "3"

    verdicts = {v.output_id: v for v in judges.list_verdicts(pool, judge.id, admin)}
    assert ids["unrated"] not in verdicts
    for name, verdict in (("up_pass", "pass"), ("up_fail", "fail"), ("down_fail", "fail")):
        _answer(pool, verdicts[ids[name]].judge_output_id, verdict)
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[":material/check_circle: Pass"] == "1"
    assert metrics[":material/cancel: Fail"] == "2"
    # 3 pairs: agreement 2/3; people pass 2/3, judge 1/3: expected 2/9 + 2/9 = 4/9;
    # kappa (6/9 - 4/9) / (5/9) = 0.4
    assert metrics["Outputs with both"] == "3"
    assert metrics["Agreement"] == "67%"
    assert metrics["Cohen's kappa"] == "0.40"
    assert "n = 3" in _texts(at.caption)
    matrix = next(d.value for d in at.dataframe if "Judge: pass" in d.value.columns)
    assert matrix.to_dict("records") == [
        {"Person": "Thumbs up", "Judge: pass": 1, "Judge: fail": 1},
        {"Person": "Thumbs down", "Judge: pass": 0, "Judge: fail": 1},
    ]
    per_model = next(d.value for d in at.dataframe if "Kappa" in d.value.columns)
    assert per_model.to_dict("records")[0]["Model"] == "offline/echo"

    # the Leaderboard shows the judge's pass rate beside people's, and ranks by it
    board = app_as(analyst, LEADERBOARD)
    board.selectbox(key="leaderboard_judge").select(judge.id).run()
    assert not board.exception
    [table] = [d.value for d in board.dataframe if "judge_pass_rate" in d.value.columns]
    [row] = table.to_dict("records")
    assert row["judge_pass_rate"] == pytest.approx(1 / 3)
    assert row["thumbs_up_rate"] == pytest.approx(2 / 3)
    assert row["both_rate"] == pytest.approx(0.5)

    # an output's verdicts panel, apart from feedback
    panel = AppTest.from_function(_panel, args=(database_url, analyst.id, ids["up_pass"]))
    panel.run()
    assert not panel.exception
    [shown] = [d.value for d in panel.dataframe]
    assert shown.to_dict("records") == [
        {"Judge": "strict", "Verdict": "pass", "Reason": "reads pass"}
    ]


def _panel(database_url, user_id, output_id):
    from dashboard import ui
    from db.pool import sync_pool
    from tasks import admin as admin_cases
    from tasks import outputs as jobs

    with sync_pool(database_url, max_size=1) as pool:
        viewer = admin_cases.user_by_id(pool, user_id)
        ui.verdicts_panel(pool, viewer, jobs.get_output(pool, output_id, viewer))


def test_an_admin_changes_then_deletes_a_judge_after_confirming(app_as, pool, admin):
    judge = judges.add_judge(pool, admin, name="strict", model="offline/echo")
    judges.add_judge(pool, admin, name="kind", model="offline/echo")
    at = app_as(admin, PAGE)
    at.selectbox(key="judges_pick").select(judge.id).run()
    form = f"judges_form_{judge.id}"
    assert at.text_input(key=f"{form}_name").value == "strict"
    at.text_input(key=f"{form}_name").input("kind")
    at.button(key=f"FormSubmitter:{form}-Save changes").click().run()
    assert "Name: a judge named 'kind' exists already" in _texts(at.error)
    at.text_area(key=f"{form}_rubric").input("{{ answer }} of {{ prompt }}")
    at.text_input(key=f"{form}_name").input("strict v2")
    at.button(key=f"FormSubmitter:{form}-Save changes").click().run()
    assert not at.exception
    saved = judges.get_judge(pool, judge.id, admin)
    assert (saved.name, saved.rubric) == ("strict v2", "{{ answer }} of {{ prompt }}")

    assert at.button(key="judges_delete").disabled
    at.checkbox(key="judges_delete_sure").check().run()
    at.button(key="judges_delete").click().run()
    assert not at.exception
    assert [j.name for j in judges.list_judges(pool, admin)] == ["kind"]
    assert "Judge strict v2 deleted." in _texts(at.success)
    assert at.selectbox(key="judges_pick").value is None
