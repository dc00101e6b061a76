"""LLM judges end to end, with the real worker and the scripted provider: a judge passes and
fails outputs through ordinary queued jobs; a judge that never answers valid JSON is re-asked,
then gives no verdict with the error; calibration against hand-counted thumbs; verdicts never
touch people's feedback; only admins define and run judges; a run's scope is what it says."""

from __future__ import annotations

import json

import pytest

from tasks import analytics, comparisons, feedback, judges
from tasks import outputs as jobs
from tasks.errors import Forbidden, InvalidInput, NotFound
from tests.support.provider import Step, ok

WRITER = "openai/writer"
JUDGE = "openai/judge"
BROKEN = "openai/broken-judge"


def _answer(body: dict) -> Step:
    """The writer repeats its prompt; the judge passes what says GOOD and fails the rest; the
    broken judge never answers JSON."""
    said = body["messages"][-1]["content"]
    if body["model"] == "writer":
        return ok(f"Answer: {said}")
    if body["model"] == "judge":
        everything = " ".join(str(m["content"]) for m in body["messages"])
        verdict = "pass" if "GOOD" in everything else "fail"
        return ok(json.dumps({"verdict": verdict, "reason": f"it reads {verdict}"}))
    return ok("certainly! it passes")


def _submit(pool, user, model, word):
    return jobs.submit(
        pool, user=user, template="Say {{word}}", context={"word": word}, model=model
    ).output_id


def _feedback_rows(pool):
    """Every judged output's feedback, and how many feedback events there are."""
    with pool.connection() as conn:
        outputs = conn.execute(
            "SELECT id, feedback, feedback_reasons, feedback_comment, corrected_answer"
            "  FROM llm_outputs WHERE user_id <> (SELECT id FROM users WHERE name = 'root-admin')"
            " ORDER BY id"
        ).fetchall()
        events = conn.execute("SELECT count(*) AS n FROM feedback_events").fetchone()["n"]
    return outputs, events


@pytest.fixture
async def judged_world(pool, analyst, other_analyst, admin, provider, run_worker):
    """Six outputs of ana with hand-set thumbs, one of otto's, all completed."""
    provider.default = _answer
    ids = {
        "o1": _submit(pool, analyst, "offline/echo", "GOOD one"),
        "o2": _submit(pool, analyst, "offline/echo", "GOOD two"),
        "o3": _submit(pool, analyst, "offline/echo", "BAD three"),
        "o4": _submit(pool, analyst, "offline/echo", "BAD four"),
        "o5": _submit(pool, analyst, WRITER, "GOOD five"),
        "o6": _submit(pool, analyst, WRITER, "BAD six"),
        "otto": _submit(pool, other_analyst, "offline/echo", "GOOD otto"),
    }
    await run_worker()
    for name, thumb in {"o1": "thumbs_up", "o2": "thumbs_down", "o3": "thumbs_down"}.items():
        feedback.set_feedback(pool, ids[name], analyst, thumb)
    for name, thumb in {"o5": "thumbs_up", "o6": "thumbs_up"}.items():
        feedback.set_feedback(pool, ids[name], analyst, thumb)
    return ids


async def test_a_judge_passes_and_fails_outputs_as_ordinary_jobs_and_calibrates(
    pool, analyst, other_analyst, admin, provider, run_worker, judged_world
):
    ids = judged_world
    before = _feedback_rows(pool)
    board_before = comparisons.leaderboard(pool, analyst)
    judge = judges.add_judge(pool, admin, name="strict", model=JUDGE)
    assert judge.rubric == judges.DEFAULT_RUBRIC

    run = judges.run_judge(pool, admin, judge.id, judges.JudgeScope(user_id=analyst.id))
    assert (run.queued, run.capped, run.queue) == (6, False, "low")
    assert sorted(run.output_ids) == sorted(v for k, v in ids.items() if k != "otto")
    # ordinary jobs of the admin: json with the verdict's schema, in the low queue, waiting
    judge_output = jobs.get_output(pool, run.judge_output_ids[0], admin)
    assert (judge_output.user_id, judge_output.queue, judge_output.format) == (
        admin.id,
        "low",
        "json",
    )
    assert judge_output.json_schema == judges.VERDICT_SCHEMA
    assert judges.verdict_counts(pool, judge.id, admin)["waiting"] == 6

    await run_worker()
    counts = judges.verdict_counts(pool, judge.id, admin)
    assert counts == {"pass": 3, "fail": 3, "no verdict": 0, "waiting": 0}
    by_output = {v.output_id: v for v in judges.list_verdicts(pool, judge.id, admin)}
    assert by_output[ids["o1"]].outcome == "pass" and by_output[ids["o1"]].reason == "it reads pass"
    assert by_output[ids["o4"]].outcome == "fail"
    assert ids["otto"] not in by_output
    # the judge saw the judged output's prompt and answer through the rubric
    judge_prompts = [r for r in provider.requests if r["model"] == "judge"]
    assert any("Say GOOD five" in r["messages"][-1]["content"] for r in judge_prompts)

    # verdicts are never feedback: thumbs, events and the thumbs rate are as they were
    assert _feedback_rows(pool) == before
    assert [
        (e.model, e.thumbs_up, e.thumbs_down) for e in comparisons.leaderboard(pool, analyst)
    ] == [(e.model, e.thumbs_up, e.thumbs_down) for e in board_before]

    calibrated = judges.calibration(pool, judge.id, admin)
    overall = calibrated.overall
    # hand count: up/pass o1 o5, up/fail o6, down/pass o2, down/fail o3 (o4 has no thumb)
    assert overall.matrix == {
        "thumbs_up": {"pass": 2, "fail": 1},
        "thumbs_down": {"pass": 1, "fail": 1},
    }
    assert overall.count == 5 and overall.agreement == pytest.approx(0.6)
    # expected agreement 0.6 * 0.6 + 0.4 * 0.4 = 0.52: kappa (0.6 - 0.52) / 0.48
    assert overall.kappa == pytest.approx(0.08 / 0.48)
    per_model = {c.model: c for c in calibrated.per_model}
    assert per_model["offline/echo"].count == 3
    assert per_model["offline/echo"].kappa == pytest.approx(0.4)
    assert per_model[WRITER].kappa == pytest.approx(0.0)

    # the leaderboard ranks by the judge's pass rate, with its interval, or by both rates
    board = comparisons.leaderboard(pool, analyst, judge_id=judge.id, rank_by="judge")
    by_model = {e.model: e for e in board}
    echo, writer = by_model["offline/echo"], by_model[WRITER]
    assert (echo.judge_pass, echo.judge_fail, writer.judge_pass, writer.judge_fail) == (2, 2, 1, 1)
    assert (echo.judge_low, echo.judge_high) == pytest.approx(analytics.wilson_interval(2, 4))
    assert echo.both_rate == pytest.approx((1 / 3 + 0.5) / 2)
    assert writer.both_rate == pytest.approx((1.0 + 0.5) / 2)
    by_both = comparisons.leaderboard(pool, analyst, judge_id=judge.id, rank_by="both")
    assert [e.model for e in by_both] == [WRITER, "offline/echo"]
    assert "judge_pass_rate" in comparisons.leaderboard_csv(board)
    assert "judge_pass_rate" not in comparisons.leaderboard_csv(board_before)
    for wrong, field in [({"rank_by": "judge"}, "judge_id"), ({"rank_by": "x"}, "rank_by")]:
        with pytest.raises(InvalidInput) as caught:
            comparisons.leaderboard(pool, analyst, **wrong)
        assert caught.value.field == field
    with pytest.raises(InvalidInput) as caught:
        comparisons.leaderboard(pool, analyst, judge_id=10**9, rank_by="judge")
    assert caught.value.field == "judge_id"

    # the same run again skips what this judge judged; again=True replaces those verdicts
    same = judges.run_judge(pool, admin, judge.id, judges.JudgeScope(user_id=analyst.id))
    assert same.queued == 0 and "already judged are skipped" in same.message
    again = judges.run_judge(
        pool, admin, judge.id, judges.JudgeScope(model=WRITER), again=True, queue="high"
    )
    assert again.queued == 2 and again.queue == "high"
    replaced = {v.output_id: v for v in judges.list_verdicts(pool, judge.id, admin)}
    assert replaced[ids["o5"]].outcome == "waiting"
    assert replaced[ids["o5"]].judge_output_id != by_output[ids["o5"]].judge_output_id
    assert len(replaced) == 6

    # an analyst reads verdicts and calibration of their own outputs only
    assert judges.list_verdicts(pool, judge.id, other_analyst) == []
    assert judges.calibration(pool, judge.id, other_analyst).overall.count == 0
    assert len(judges.output_verdicts(pool, ids["o1"], analyst)) == 1
    with pytest.raises(NotFound):
        judges.output_verdicts(pool, ids["o1"], other_analyst)


async def test_a_judge_that_never_answers_json_gives_no_verdict_with_the_error(
    pool, admin, provider, run_worker, judged_world, settings_env
):
    settings_env(JSON_REASKS="1")
    ids = judged_world
    judge = judges.add_judge(pool, admin, name="broken", model=BROKEN)
    run = judges.run_judge(
        pool, admin, judge.id, judges.JudgeScope(model="offline/echo", rated_only=True)
    )
    assert sorted(run.output_ids) == sorted([ids["o1"], ids["o2"], ids["o3"]])
    await run_worker()
    asked = [r for r in provider.requests if r["model"] == "broken-judge"]
    assert len(asked) == 3 * 2  # each asked once, then re-asked once
    verdicts = judges.list_verdicts(pool, judge.id, admin)
    assert {v.outcome for v in verdicts} == {"no verdict"}
    assert all(v.error_message and v.reason is None for v in verdicts)
    assert judges.verdict_counts(pool, judge.id, admin)["no verdict"] == 3
    assert judges.calibration(pool, judge.id, admin).overall.count == 0


def test_only_admins_define_change_delete_and_run_judges(pool, analyst, admin):
    with pytest.raises(Forbidden):
        judges.add_judge(pool, analyst, name="mine", model="offline/echo")
    judge = judges.add_judge(pool, admin, name="kind", model="offline/echo")
    with pytest.raises(Forbidden):
        judges.run_judge(pool, analyst, judge.id)
    with pytest.raises(Forbidden):
        judges.edit_judge(pool, analyst, judge.id, name="x")
    with pytest.raises(Forbidden):
        judges.delete_judge(pool, analyst, judge.id)
    assert judges.get_judge(pool, judge.id, analyst).name == "kind"
    judges.delete_judge(pool, admin, judge.id)
    with pytest.raises(NotFound):
        judges.get_judge(pool, judge.id, admin)


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"rubric": "Judge {{ answer "}, "rubric", "syntax error on line 1"),
        ({"rubric": "Judge {{ answer }} of {{ secret }}"}, "rubric", "unknown variable secret"),
        ({"rubric": "x" * 20_001}, "rubric", "at most 20,000 characters"),
        ({"name": " "}, "name", "is required"),
        ({"name": "a\x00b"}, "name", "NUL"),
        ({"name": "a\ud800"}, "name", "lone surrogate"),
        ({"rubric": "{{ answer }}\x00"}, "rubric", "NUL"),
        ({"model": "openai/no such"}, "model", ""),
        ({"model": "offline/nope"}, "model", "unknown offline model"),
    ],
)
def test_a_bad_judge_is_refused_naming_the_field(pool, admin, changes, field, says):
    wanted = {"name": "j", "model": "offline/echo", "rubric": None, **changes}
    with pytest.raises(InvalidInput) as caught:
        judges.add_judge(pool, admin, **wanted)
    assert caught.value.field == field and says in caught.value.message
    assert judges.list_judges(pool, admin) == []


def test_names_are_unique_and_an_edit_keeps_what_it_leaves_out(pool, admin):
    judges.add_judge(pool, admin, name="one", model="offline/echo")
    two = judges.add_judge(pool, admin, name="two", model="offline/echo", rubric="{{ answer }}")
    with pytest.raises(InvalidInput) as caught:
        judges.add_judge(pool, admin, name="one", model="offline/echo")
    assert caught.value.field == "name"
    with pytest.raises(InvalidInput):
        judges.edit_judge(pool, admin, two.id, name="one")
    edited = judges.edit_judge(pool, admin, two.id, model="offline/brief")
    assert (edited.name, edited.model, edited.rubric) == ("two", "offline/brief", "{{ answer }}")


def test_a_run_is_refused_naming_the_bad_part_of_its_scope(pool, admin):
    judge = judges.add_judge(pool, admin, name="j", model="offline/echo")
    for scope, queue, field in [
        (judges.JudgeScope(), "urgent", "queue"),
        (judges.JudgeScope(model="bad model"), "low", "model"),
        (judges.JudgeScope(template_name="nope"), "low", "template_name"),
        (judges.JudgeScope(template_version=2), "low", "template_version"),
        (judges.JudgeScope(template="a", template_name="b"), "low", "template"),
        (judges.JudgeScope(batch_id=0), "low", "batch_id"),
        (judges.JudgeScope(template="{{ x }}\ud800"), "low", "template"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            judges.run_judge(pool, admin, judge.id, scope, queue=queue)
        assert caught.value.field == field
    with pytest.raises(NotFound):
        judges.run_judge(pool, admin, 10**6)


def test_a_run_is_capped_and_says_so(pool, admin, analyst, monkeypatch):
    monkeypatch.setattr(judges, "MAX_RUN_OUTPUTS", 2)
    for word in ("a", "b", "c"):
        _submit(pool, analyst, "offline/echo", word)
    with pool.connection() as conn:
        conn.execute(
            "UPDATE llm_outputs SET status = 'completed', raw_response = 'x', prompt = 'p',"
            " started_at = now(), completed_at = now()"
        )
    judge = judges.add_judge(pool, admin, name="j", model="offline/echo")
    run = judges.run_judge(pool, admin, judge.id)
    assert run.queued == 2 and run.capped and "capped at 2" in run.message


# The command line: `llmjobs judge list|add|run|calibration`.


def test_the_command_line_adds_runs_and_calibrates_a_judge(
    database_url, pool, analyst, admin, tmp_path
):
    from tests.integration.test_cli import llmjobs

    output_id = _submit(pool, analyst, "offline/echo", "GOOD")
    with pool.connection() as conn:
        conn.execute(
            "UPDATE llm_outputs SET status = 'completed', raw_response = 'x', prompt = 'p',"
            " started_at = now(), completed_at = now()"
        )
    feedback.set_feedback(pool, output_id, analyst, "thumbs_up")
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("Is {{ answer }} right for {{ prompt }}?", encoding="utf-8")

    added = llmjobs(
        "judge",
        "add",
        "cli judge",
        "--model",
        "offline/echo",
        "--rubric",
        str(rubric),
        "--user",
        "root-admin",
    )
    assert added.returncode == 0, added.stderr
    judge = json.loads(added.stdout)
    assert judge["rubric"] == rubric.read_text(encoding="utf-8")
    listed = llmjobs("judge", "list", "--user", "ana")
    assert [j["name"] for j in json.loads(listed.stdout)] == ["cli judge"]

    ran = llmjobs(
        "judge", "run", "cli judge", "--rated-only", "--of", "ana", "--user", "root-admin"
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["output_ids"] == [output_id]
    calibrated = llmjobs("judge", "calibration", str(judge["id"]), "--user", "ana")
    assert json.loads(calibrated.stdout)["overall"]["count"] == 0  # the verdict is waiting
    board = llmjobs(
        "leaderboard", "--judge", str(judge["id"]), "--rank-by", "both", "--user", "ana"
    )
    assert board.returncode == 0, board.stderr
    (entry,) = json.loads(board.stdout)["entries"]
    assert (entry["thumbs_up"], entry["judge_pass"] + entry["judge_fail"]) == (1, 0)

    for args, code, says in [
        (("judge", "run", "cli judge", "--user", "ana"), 1, "only admins run judges"),
        (("judge", "run", "cli judge", "--queue", "soon", "--user", "root-admin"), 2, "queue:"),
        (("judge", "run", "nobody", "--user", "root-admin"), 1, "no judge named 'nobody'"),
        (("leaderboard", "--rank-by", "judge", "--user", "ana"), 2, "judge_id:"),
        (("judge", "run", "1", "--since", "2026-13-01", "--user", "root-admin"), 2, "not a date"),
        (("judge", "add", "x", "--model", "offline/nope", "--user", "root-admin"), 2, "model:"),
        (
            (
                "judge",
                "add",
                "x",
                "--model",
                "offline/echo",
                "--rubric",
                "/nope",
                "--user",
                "root-admin",
            ),
            2,
            "rubric: no file",
        ),
    ]:
        result = llmjobs(*args)
        assert result.returncode == code, (args, result.stderr)
        assert says in result.stderr and result.stdout == ""


def test_a_blind_comparison_is_judged_only_after_its_pick(pool, analyst, admin):
    compared = comparisons.submit_comparison_on
    with pool.connection() as conn:
        made = compared(
            conn,
            user=analyst,
            template="Say {{w}}",
            context={"w": "x"},
            models=["offline/echo", "offline/brief"],
            blind=True,
        )
        conn.execute(
            "UPDATE llm_outputs SET status = 'completed', raw_response = 'x', prompt = 'p',"
            " started_at = now(), completed_at = now()"
        )
    judge = judges.add_judge(pool, admin, name="j", model="offline/echo")
    assert judges.run_judge(pool, admin, judge.id).queued == 0
    comparisons.pick(pool, made.comparison_id, analyst, made.outputs[0].output_id)
    assert judges.run_judge(pool, admin, judge.id).queued == 2
