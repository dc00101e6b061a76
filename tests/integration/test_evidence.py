"""Comparisons, pairwise preferences, the leaderboard, costs and budgets, and the versioned
template library, against real Postgres and a real worker."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from db import analytics as analytics_db
from db import outputs as outputs_db
from tasks import analytics, budgets, comparisons, exports, templates
from tasks import feedback as ratings
from tasks import outputs as jobs
from tasks.errors import BudgetExceeded, Conflict, Forbidden, InvalidInput, NotFound
from tasks.testing import create_test_llm_output, stub_model_success
from tests.support.clock import clear_of
from tests.support.hostile import FORMULAS, neutralised
from tests.support.provider import ok


def _counts(pool) -> tuple[int, int]:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM llm_outputs) AS o, "
            "(SELECT count(*) FROM procrastinate_jobs) AS j"
        ).fetchone()
    return row["o"], row["j"]


# Template library


def test_every_edit_is_a_new_version(pool, analyst, other_analyst, admin):
    v1 = templates.save_template(pool, analyst, "explain", "Explain {{c}}")
    same = templates.save_template(pool, analyst, "explain", "Explain {{c}}")
    v2 = templates.save_template(pool, analyst, "explain", "Explain {{c}} simply", note="simpler")
    assert (v1.version, same.version, v2.version) == (1, 1, 2)
    assert [v.version for v in templates.versions(pool, "explain")] == [2, 1]
    assert templates.get_version(pool, "explain").body == "Explain {{c}} simply"
    assert templates.get_version(pool, "explain", 1).body == "Explain {{c}}"
    with pytest.raises(Forbidden):
        templates.save_template(pool, other_analyst, "explain", "Hijack {{c}}")
    assert templates.save_template(pool, admin, "explain", "Admin {{c}}").version == 3
    with pytest.raises(InvalidInput) as caught:
        templates.save_template(pool, analyst, "broken", "{{ c")
    assert caught.value.field == "template"
    assert [t.name for t in templates.list_templates(pool)] == ["explain"]


def test_outputs_record_the_version_they_used(pool, analyst):
    templates.save_template(pool, analyst, "explain", "Explain {{c}}")
    v2 = templates.save_template(pool, analyst, "explain", "Explain {{c}} to a child")
    latest = jobs.submit(
        pool,
        user=analyst,
        template=None,
        template_name="explain",
        context={"c": "sets"},
        model="offline/echo",
    )
    older = jobs.submit(
        pool,
        user=analyst,
        template=None,
        template_name="explain",
        template_version=1,
        context={"c": "sets"},
        model="offline/echo",
    )
    out_latest = jobs.get_output(pool, latest.output_id, analyst)
    out_older = jobs.get_output(pool, older.output_id, analyst)
    assert (out_latest.template, out_latest.template_version_id) == (
        "Explain {{c}} to a child",
        v2.id,
    )
    assert out_older.template == "Explain {{c}}"
    rerun = jobs.get_output(pool, jobs.re_run(pool, latest.output_id, analyst).output_id, analyst)
    assert rerun.template_version_id == v2.id
    for bad in (
        {"template_name": "nope"},
        {"template_name": "explain", "template_version": 9},
        {"template_name": "explain", "template": "x"},
    ):
        with pytest.raises(InvalidInput):
            jobs.submit(
                pool,
                user=analyst,
                context={"c": 1},
                model="offline/echo",
                **{"template": None, **bad},
            )


# Comparisons


async def test_compare_side_by_side_blind_then_pick(pool, analyst, other_analyst, run_worker):
    with stub_model_success({"text": "stub says hi"}) as stub:
        sub = comparisons.submit_comparison(
            pool,
            user=analyst,
            template="Explain {{c}}",
            context={"c": "sets"},
            models=["offline/echo", stub],
            blind=True,
        )
        assert [o.model for o in sub.outputs] == [jobs.BLIND_MODEL] * 2
        assert _counts(pool) == (2, 2)
        view = comparisons.get_comparison(pool, sub.comparison_id, analyst)
        assert view.blind and not view.picked
        assert set(view.models.values()) == {None}
        assert {o.model for o in view.outputs} == {jobs.BLIND_MODEL}
        assert sorted(view.labels.values()) == ["A", "B"]
        with pytest.raises(Conflict, match="finished"):
            comparisons.pick(pool, sub.comparison_id, analyst, sub.outputs[0].output_id)
        await run_worker()
    with pytest.raises(NotFound):
        comparisons.get_comparison(pool, sub.comparison_id, other_analyst)
    winner = sub.outputs[1].output_id
    picked = comparisons.pick(pool, sub.comparison_id, analyst, winner)
    assert picked.picked and picked.winner_output_id == winner and not picked.tie
    assert sorted(picked.models.values()) == sorted(["offline/echo", stub])  # revealed
    assert next(o for o in picked.outputs if o.model == stub).parsed_output == "stub says hi"
    with pytest.raises(InvalidInput):
        comparisons.pick(pool, sub.comparison_id, analyst, 999_999)
    tie = comparisons.pick(pool, sub.comparison_id, analyst, None)
    assert tie.tie and tie.winner_output_id is None
    with pool.connection() as conn:
        outcomes = [r["outcome"] for r in conn.execute("SELECT outcome FROM preferences")]
    assert outcomes == ["tie"]


@pytest.mark.parametrize(
    ("models", "fragment"),
    [
        (["offline/echo"], "2 to 6 distinct"),
        (["offline/echo", "offline/echo"], "distinct"),
        (["offline/echo", "gpt-4o"], "no worker serves it"),
        ([f"m{i}" for i in range(7)], "2 to 6"),
    ],
)
def test_bad_comparisons_write_nothing(pool, analyst, models, fragment):
    with pytest.raises(InvalidInput) as caught:
        comparisons.submit_comparison(
            pool, user=analyst, template="x {{c}}", context={"c": 1}, models=models
        )
    assert caught.value.field == "models" and fragment in caught.value.message
    assert _counts(pool) == (0, 0)


# Leaderboard


def _seed_leaderboard(pool, user):
    """m-good: 8 up 2 down, cost 0.01 each; m-cheap: 3 up 3 down, cost 0.001 each;
    one comparison where m-good beat m-cheap and one tie."""
    made = {"m-good": [], "m-cheap": []}
    for model, ups, downs, cost in (("m-good", 8, 2, "0.01"), ("m-cheap", 3, 3, "0.001")):
        for feedback in ["thumbs_up"] * ups + ["thumbs_down"] * downs:
            out = create_test_llm_output(pool, user, model=model, feedback=feedback)
            with pool.connection() as conn:
                analytics_db.set_output_figures(conn, out.id, cost=Decimal(cost), latency_ms=100)
            made[model].append(out.id)
    with pool.connection() as conn:
        for outcome in ("a", "tie"):
            cid = conn.execute(
                "INSERT INTO comparisons (user_id) VALUES (%s) RETURNING id", (user.id,)
            ).fetchone()["id"]
            conn.execute(
                "INSERT INTO preferences (comparison_id, user_id, output_a, output_b, "
                "outcome) VALUES (%s, %s, %s, %s, %s)",
                (cid, user.id, made["m-good"][0], made["m-cheap"][0], outcome),
            )
    return made


def test_leaderboard_figures_by_hand(pool, analyst, other_analyst):
    _seed_leaderboard(pool, analyst)
    create_test_llm_output(pool, other_analyst, model="m-other", feedback="thumbs_up")
    board = comparisons.leaderboard(pool, analyst)
    assert [e.model for e in board] == ["m-good", "m-cheap"]  # only the viewer's, best first
    good, cheap = board
    assert (good.thumbs_up, good.thumbs_down, good.outputs) == (8, 2, 10)
    assert good.thumbs_up_rate == pytest.approx(0.8)
    # Wilson 95 % for 8/10: (0.4902, 0.9433)
    assert good.wilson_low == pytest.approx(0.4902, abs=1e-4)
    assert good.wilson_high == pytest.approx(0.9433, abs=1e-4)
    assert (good.pairs, good.win_rate) == (2, pytest.approx(0.75))  # a win and a tie
    assert (cheap.pairs, cheap.win_rate) == (2, pytest.approx(0.25))
    assert good.judgements == 12
    assert good.cost_per_output == pytest.approx(0.01)
    assert good.cost_per_thumbs_up == pytest.approx(0.1 / 8)
    assert cheap.cost_per_thumbs_up == pytest.approx(0.006 / 3)
    assert good.median_latency_ms == 100
    assert comparisons.suggest(board).model == "m-good"
    assert comparisons.suggest(board, cost_ceiling=0.005).model == "m-cheap"
    assert comparisons.suggest(board, cost_ceiling=0.0001) is None
    csv_text = comparisons.leaderboard_csv(board)
    assert csv_text.splitlines()[0].startswith("model,outputs,thumbs_up")
    assert csv_text.splitlines()[1].startswith("m-good,10,8,2")


def test_leaderboard_csv_keeps_formulas_in_model_names_as_text(pool, analyst):
    for model in FORMULAS:
        out = create_test_llm_output(pool, analyst, model=model, feedback="thumbs_up")
        with pool.connection() as conn:
            analytics_db.set_output_figures(conn, out.id, cost=Decimal("0.5"), latency_ms=100)
    board = comparisons.leaderboard(pool, analyst)
    header, *rows = csv.reader(io.StringIO(comparisons.leaderboard_csv(board)))
    table = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert sorted(table) == sorted(map(neutralised, FORMULAS))
    # numbers are written as numbers
    assert {(r["outputs"], r["thumbs_up"], r["cost_per_output"]) for r in table.values()} == {
        ("1", "1", "0.5")
    }
    assert sorted(e.model for e in board) == sorted(FORMULAS)
    exported = [json.loads(line) for line in exports.export_jsonl(pool, analyst)]
    assert sorted(r["model"] for r in exported) == sorted(FORMULAS)


def _judged_versions(pool, user, name: str, first: str, second: str) -> None:
    """Two versions of a library template: one thumbs-down answer from v1, two thumbs-up from v2."""
    templates.save_template(pool, user, name, first)
    templates.save_template(pool, user, name, second)
    for version, feedback in ((1, "thumbs_down"), (2, "thumbs_up"), (2, "thumbs_up")):
        sub = jobs.submit(
            pool,
            user=user,
            template=None,
            template_name=name,
            template_version=version,
            context={"c": 1},
            model="offline/echo",
        )
        with pool.connection() as conn:
            conn.execute(
                "UPDATE llm_outputs SET status = 'completed', completed_at = now(), "
                "feedback = %s WHERE id = %s",
                (feedback, sub.output_id),
            )


def test_leaderboard_by_template_version(pool, analyst):
    _judged_versions(pool, analyst, "t", "v1 {{c}}", "v2 {{c}}")
    v1 = comparisons.leaderboard(pool, analyst, template_name="t", version=1)
    v2 = comparisons.leaderboard(pool, analyst, template_name="t", version=2)
    assert [(e.thumbs_up, e.thumbs_down) for e in v1] == [(0, 1)]
    assert [(e.thumbs_up, e.thumbs_down) for e in v2] == [(2, 0)]
    assert sum(e.outputs for e in comparisons.leaderboard(pool, analyst, template_name="t")) == 3


# Cost and budgets


async def test_configured_prices_give_the_cost(pool, analyst, provider, run_worker, monkeypatch):
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", "openai/priced=1000/2000")
    provider.push(ok("four words answer here"))
    sub = jobs.submit(
        pool, user=analyst, template="Q {{q}}", context={"q": 1}, model="openai/priced"
    )
    await run_worker()
    out = jobs.get_output(pool, sub.output_id, analyst)
    expected = out.prompt_tokens * 1000 / 1e6 + out.completion_tokens * 2000 / 1e6
    assert float(out.cost) == pytest.approx(expected)


def test_budget_refuses_and_writes_nothing(
    pool, analyst, monkeypatch, provider, catalog_of_this_process
):
    clear_of("month")  # the spend written now is this month's when it is read
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", "openai/priced=1000/1000")
    catalog_of_this_process()  # a worker configured so: it publishes those prices
    user = budgets.set_budget(pool, "ana", "0.50")
    assert user.monthly_budget == Decimal("0.5")
    spent = create_test_llm_output(pool, analyst, model="openai/priced")
    with pool.connection() as conn:
        analytics_db.set_output_figures(conn, spent.id, cost=Decimal("0.45"), latency_ms=10)
    assert budgets.month_spend(pool, user) == Decimal("0.45")
    # about (prompt ~4 tokens + 500 completion tokens) x $0.001 = $0.50 > $0.05 left
    with pytest.raises(BudgetExceeded, match=r"monthly budget of \$0.50 would be exceeded"):
        jobs.submit(pool, user=user, template="Q {{q}}", context={"q": 1}, model="openai/priced")
    with pytest.raises(BudgetExceeded):
        jobs.submit_many(
            pool, user=user, template="Q {{q}}", contexts=[{"q": 1}], model="openai/priced"
        )
    assert _counts(pool) == (1, 0)
    # the free offline model still goes through, and no budget means no limit
    jobs.submit(pool, user=user, template="Q {{q}}", context={"q": 1}, model="offline/echo")
    unlimited = budgets.set_budget(pool, "ana", None)
    jobs.submit(pool, user=unlimited, template="Q {{q}}", context={"q": 1}, model="openai/priced")
    assert _counts(pool) == (3, 2)
    for bad in ("-1", "lots", "1e20"):
        with pytest.raises(InvalidInput):
            budgets.set_budget(pool, "ana", bad)


def test_template_diff_between_versions(pool, analyst):
    v1 = templates.save_template(pool, analyst, "brief", "Summarise {{text}}\nIn one line.")
    v2 = templates.save_template(pool, analyst, "brief", "Summarise {{text}}\nIn two lines.")
    diff = templates.diff_versions(v1, v2)
    assert diff.splitlines() == [
        "--- brief v1",
        "+++ brief v2",
        "@@ -1,2 +1,2 @@",
        " Summarise {{text}}",
        "-In one line.",
        "+In two lines.",
    ]
    assert templates.diff_versions(v2, v2) == ""


def test_recent_comparisons_hide_blind_models_until_picked(pool, analyst, other_analyst):
    with stub_model_success() as stub:
        models = ["offline/echo", stub]
        first = comparisons.submit_comparison(
            pool, user=analyst, template="Explain {{c}}", context={"c": 1}, models=models
        )
        blind = comparisons.submit_comparison(
            pool, user=analyst, template="Define {{c}}", context={"c": 1}, models=models, blind=True
        )
    recent = comparisons.list_comparisons(pool, analyst)
    assert [r.comparison_id for r in recent] == [blind.comparison_id, first.comparison_id]
    assert (recent[0].models, recent[0].answers, recent[0].finished) == (None, 2, 0)
    assert (recent[1].models, recent[1].template) == (models, "Explain {{c}}")
    assert comparisons.list_comparisons(pool, other_analyst) == []
    assert [r.comparison_id for r in comparisons.list_comparisons(pool, analyst, 1)] == [
        blind.comparison_id
    ]
    with pool.connection() as conn:
        for out in blind.outputs:
            outputs_db.set_output_state(conn, out.output_id, status="completed", raw_response="x")
    comparisons.pick(pool, blind.comparison_id, analyst, blind.outputs[0].output_id)
    newest = comparisons.list_comparisons(pool, analyst)[0]
    # a blind comparison's answers are made in no set order: its models come in theirs
    assert (sorted(newest.models), newest.finished, newest.picked) == (sorted(models), 2, True)
    with pytest.raises(InvalidInput):
        comparisons.list_comparisons(pool, analyst, 0)


def test_cost_over_time_by_model_and_user(pool, analyst, other_analyst, admin):
    at = datetime.now(UTC) - timedelta(minutes=1)  # one moment: one day's bucket
    for user, model, cost in (
        (analyst, "m-a", "0.01"),
        (analyst, "m-a", "0.02"),
        (analyst, "m-b", "0.5"),
        (other_analyst, "m-a", "1"),
    ):
        out = create_test_llm_output(pool, user, model=model)
        with pool.connection() as conn:
            analytics_db.set_output_figures(
                conn, out.id, cost=Decimal(cost), latency_ms=10, created_at=at
            )
    flt = analytics.output_filter()

    def totals(viewer, **narrow):
        points = analytics.cost_over_time(pool, viewer, flt.model_copy(update=narrow))
        return {(p.user_name, p.model): (p.outputs, p.cost) for p in points}

    assert totals(analyst) == {
        ("ana", "m-a"): (2, Decimal("0.03")),
        ("ana", "m-b"): (1, Decimal("0.5")),
    }
    assert totals(admin)[("otto", "m-a")] == (1, Decimal("1"))
    assert set(totals(admin, model="m-a")) == {("ana", "m-a"), ("otto", "m-a")}
    assert set(totals(admin, user_id=other_analyst.id)) == {("otto", "m-a")}
    assert totals(analyst, user_id=other_analyst.id) == totals(analyst)  # analysts: their own


def test_analytics_by_template_names_library_versions(pool, analyst):
    from tasks import analytics

    _judged_versions(pool, analyst, "tutor", "Explain {{c}}", "Explain {{c}} simply")
    create_test_llm_output(pool, analyst, template="Plain {{c}}", feedback="thumbs_up")
    rows = analytics.top_templates(pool, analyst, analytics.output_filter())
    by_label = {r.label: (r.thumbs_up, r.thumbs_down) for r in rows}
    assert by_label == {"tutor v2": (2, 0), "tutor v1": (0, 1), "Plain {{c}}": (1, 0)}


async def test_blind_answers_hide_their_model_everywhere_until_judged(pool, analyst, run_worker):
    with stub_model_success() as stub:
        sub = comparisons.submit_comparison(
            pool,
            user=analyst,
            template="Explain {{c}}",
            context={"c": 1},
            models=["offline/echo", stub],
            blind=True,
        )
        ids = [o.output_id for o in sub.outputs]
        await run_worker()
        listed = {o.id: o.model for o in jobs.list_outputs(pool, analyst)}
        assert listed == {i: jobs.BLIND_MODEL for i in ids}
        assert jobs.get_output(pool, ids[1], analyst).model == jobs.BLIND_MODEL
        comparisons.pick(pool, sub.comparison_id, analyst, ids[0])
        models = {i: jobs.get_output(pool, i, analyst).model for i in ids}
        assert sorted(models.values()) == sorted(["offline/echo", stub])
        assert {o.id: o.model for o in jobs.list_outputs(pool, analyst)} == models
        # what runs again knows its model, once the pick has shown it
        again = jobs.get_output(pool, jobs.re_run(pool, ids[1], analyst).output_id, analyst)
        assert again.model == models[ids[1]]


def _blind(pool, user, blind=True):
    return comparisons.submit_comparison(
        pool,
        user=user,
        template="Explain {{c}}",
        context={"c": 1},
        models=["offline/echo", "offline/verbose"],
        blind=blind,
    )


def test_a_blind_comparison_shows_its_answers_as_every_other_page_does(pool, analyst):
    sub = _blind(pool, analyst)
    assert sub.blind and {o.model for o in sub.outputs} == {jobs.BLIND_MODEL}
    view = comparisons.get_comparison(pool, sub.comparison_id, analyst)
    for answer in view.outputs:
        alone = jobs.get_output(pool, answer.id, analyst)
        assert (answer.model, answer.blind_pending) == (alone.model, alone.blind_pending)
        assert (answer.model, answer.blind_pending) == (jobs.BLIND_MODEL, True)
    seen = _blind(pool, analyst, blind=False)  # not blind: the models from the start
    assert [o.model for o in seen.outputs] == ["offline/echo", "offline/verbose"]
    view = comparisons.get_comparison(pool, seen.comparison_id, analyst)
    assert [(o.model, o.blind_pending) for o in view.outputs] == [
        ("offline/echo", False),
        ("offline/verbose", False),
    ]


def test_blind_answers_are_made_in_no_set_order(pool, analyst):
    # Labels follow the order the answers are made: the order the models were given must not
    # tell which answer is which.
    firsts = set()
    for _ in range(30):
        sub = _blind(pool, analyst)
        view = comparisons.get_comparison(pool, sub.comparison_id, analyst)
        first = min(view.outputs, key=lambda o: o.id).id
        with pool.connection() as conn:
            firsts.add(outputs_db.get_output(conn, first).model)
    assert firsts == {"offline/echo", "offline/verbose"}


async def test_blind_answers_stay_out_of_exports_and_model_filters_until_judged(
    pool, analyst, run_worker
):
    plain = jobs.submit(
        pool, user=analyst, template="Explain {{c}}", context={"c": 2}, model="offline/echo"
    ).output_id
    sub = _blind(pool, analyst)
    ids = [o.output_id for o in sub.outputs]
    await run_worker()
    exported = [json.loads(line) for line in exports.export_jsonl(pool, analyst)]
    assert [(r["id"], r["model"]) for r in exported] == [(plain, "offline/echo")]
    by_model = exports.export_jsonl(pool, analyst, model="offline/verbose")
    assert list(by_model) == []
    assert [o.id for o in jobs.list_outputs(pool, analyst, model="offline/echo")] == [plain]
    assert jobs.list_outputs(pool, analyst, model="offline/verbose") == []
    assert {o.id for o in jobs.list_outputs(pool, analyst)} == {plain, *ids}

    ratings.set_feedback(pool, ids[0], analyst, "thumbs_up")  # rating it shows nothing either
    rated = analytics.feedback_csv(pool, analyst, analytics.output_filter())
    assert list(csv.DictReader(io.StringIO(rated))) == []

    comparisons.pick(pool, sub.comparison_id, analyst, ids[0])
    rated = analytics.feedback_csv(pool, analyst, analytics.output_filter())
    [row] = csv.DictReader(io.StringIO(rated))
    assert int(row["output_id"]) == ids[0] and row["model"] in {"offline/echo", "offline/verbose"}
    exported = [json.loads(line) for line in exports.export_jsonl(pool, analyst)]
    with pool.connection() as conn:
        models = {i: outputs_db.get_output(conn, i).model for i in ids}
    assert {r["id"]: r["model"] for r in exported} == {plain: "offline/echo", **models}
    verbose = next(i for i in ids if models[i] == "offline/verbose")
    assert [o.id for o in jobs.list_outputs(pool, analyst, model="offline/verbose")] == [verbose]


async def test_blind_answers_cannot_be_run_again_until_judged(pool, analyst, run_worker):
    sub = _blind(pool, analyst)
    ids = [o.output_id for o in sub.outputs]
    await run_worker()
    before = _counts(pool)
    with pytest.raises(Conflict, match="blind comparison"):
        jobs.re_run(pool, ids[0], analyst)
    with pytest.raises(Conflict, match="blind comparison"):
        jobs.regenerate(pool, ids[0], analyst, new_context={"c": 3})
    assert _counts(pool) == before
    comparisons.pick(pool, sub.comparison_id, analyst, None)
    again = jobs.regenerate(pool, ids[0], analyst, new_context={"c": 3})
    assert jobs.get_output(pool, again.output_id, analyst).model in {
        "offline/echo",
        "offline/verbose",
    }
