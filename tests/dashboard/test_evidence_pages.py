"""Compare, Leaderboard and Templates pages, the library and the budget on Submit, and cost over
time on Analytics: comparisons queue one job per model and stay blind until the pick, the
leaderboard matches hand-computed figures, templates keep every version."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from db import analytics as analytics_db
from db import outputs as outputs_db
from tasks import budgets, comparisons, templates
from tasks import outputs as jobs
from tasks.testing import create_test_llm_output
from tests.support.clock import clear_of

COMPARE = "dashboard/compare.py"
LEADERBOARD = "dashboard/leaderboard.py"
TEMPLATES = "dashboard/templates.py"
ANALYTICS = "dashboard/analytics.py"


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def _page_text(at) -> str:
    """Everything the main area says in words (not widget values)."""
    kinds = ("markdown", "caption", "text", "code", "success", "error", "info", "warning", "title")
    return " ".join(_texts(at.main.get(kind)) for kind in kinds)


def _table(at, column: str) -> list[dict]:
    """The rows of the table that has this column."""
    [table] = [d.value for d in at.dataframe if column in d.value.columns]
    return table.to_dict("records")


def _counts(pool) -> tuple[int, int]:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM llm_outputs) AS o, "
            "(SELECT count(*) FROM procrastinate_jobs) AS j"
        ).fetchone()
    return row["o"], row["j"]


def _finish(pool, output_id: int, answer: str) -> None:
    with pool.connection() as conn:
        outputs_db.set_output_state(
            conn, output_id, status="completed", raw_response=answer, parsed_output=answer
        )


@pytest.fixture
def two_models(llm_stub_success, settings_env) -> list[str]:
    """The offline model and a stub one, both offered by the dashboard."""
    settings_env(MODELS=llm_stub_success)
    return ["offline/echo", llm_stub_success]


def test_blind_comparison_is_queued_hidden_then_picked(app_as, pool, analyst, two_models):
    at = app_as(analyst, COMPARE)
    at.text_area(key="compare_template").input("Explain {{ concept }} briefly").run()
    at.text_area(key="compare_var_concept").input("sets")
    at.multiselect(key="compare_models").set_value(two_models)
    at.toggle(key="compare_blind").set_value(True)
    at.button(key="compare_submit").click().run()
    assert not at.exception

    with pool.connection() as conn:  # the stored rows: the use-cases hide a blind answer's model
        made = outputs_db.list_outputs(conn, user_id=analyst.id)
    assert sorted(o.model for o in made) == sorted(two_models)
    assert {o.model for o in jobs.list_outputs(pool, analyst)} == {jobs.BLIND_MODEL}
    [comparison_id] = {o.comparison_id for o in made}
    assert comparison_id is not None and len({o.job_id for o in made}) == 2
    assert _counts(pool) == (2, 2)
    assert at.query_params["id"] == str(comparison_id)
    shown = _page_text(at)
    assert "Answer A" in shown and "Answer B" in shown
    assert not any(model in shown for model in two_models)
    assert "Pick once every answer is finished." in shown
    assert not [b for b in at.button if str(b.key).startswith("compare_pick")]

    for output in made:
        _finish(pool, output.id, f"answer of {output.model}")
    at.run()
    shown = _page_text(at)
    assert "answer of offline/echo" in shown and f"answer of {two_models[1]}" in shown
    assert not any(f"· {model}" in shown for model in two_models)  # still blind
    assert not at.main.get("page_link")  # an output's page would name its model
    view = comparisons.get_comparison(pool, comparison_id, analyst)
    winner = next(o.id for o in made if o.model == two_models[1])
    at.button(key=f"compare_pick_{winner}").click().run()
    assert not at.exception

    with pool.connection() as conn:
        stored = conn.execute("SELECT output_a, output_b, outcome FROM preferences").fetchall()
    loser = next(o.id for o in made if o.id != winner)
    assert [(p["output_a"], p["output_b"], p["outcome"]) for p in stored] == [(winner, loser, "a")]
    shown = _page_text(at)
    assert f"**Answer {view.labels[winner]}** · {two_models[1]}" in _texts(at.markdown)
    assert f"You picked answer {view.labels[winner]}: {two_models[1]}." in shown
    assert not [b for b in at.button if str(b.key).startswith("compare_pick")]  # stays blind
    assert len(at.main.get("page_link")) == 2


def test_a_comparison_is_its_owners(app_as, pool, analyst, other_analyst, two_models):
    made = comparisons.submit_comparison(
        pool, user=analyst, template="Hi {{ x }}", context={"x": "1"}, models=two_models
    )
    at = app_as(other_analyst, COMPARE, id=str(made.comparison_id))
    assert not at.exception
    assert f"Comparison {made.comparison_id} not found." in _texts(at.error)
    assert "Answer A" not in _page_text(at)

    at = app_as(analyst, COMPARE, id=str(made.comparison_id))
    assert "Answer A" in _page_text(at)
    assert "Hi {{ x }}" in _texts(at.code)  # the template until a worker renders the prompt
    for output in made.outputs:
        _finish(pool, output.output_id, "hello")
    at.run()
    at.button(key="compare_pick_tie").click().run()
    assert "You called it a tie." in _texts(at.success)
    assert "Change the pick" in _texts(at.subheader)  # an open comparison can be picked again
    with pool.connection() as conn:
        assert [r["outcome"] for r in conn.execute("SELECT outcome FROM preferences")] == ["tie"]
    at.button(key="compare_new").click().run()
    assert "id" not in at.query_params
    [recent] = at.dataframe(key="compare_recent").value.to_dict("records")
    assert (recent["id"], recent["models"]) == (made.comparison_id, ", ".join(two_models))


def _seed_board(pool, analyst, other_analyst) -> None:
    """m-good: 3 up, 1 down at $0.02; m-cheap: 1 up, 2 down at $0.001; otto's m-other."""
    for model, feedbacks, cost in (
        ("m-good", ["thumbs_up"] * 3 + ["thumbs_down"], "0.02"),
        ("m-cheap", ["thumbs_up"] + ["thumbs_down"] * 2, "0.001"),
    ):
        for feedback in feedbacks:
            out = create_test_llm_output(pool, analyst, model=model, feedback=feedback)
            with pool.connection() as conn:
                analytics_db.set_output_figures(conn, out.id, latency_ms=200, cost=Decimal(cost))
    create_test_llm_output(pool, other_analyst, model="m-other", feedback="thumbs_up")


def test_leaderboard_figures_and_suggestion_under_a_ceiling(
    app_as, pool, analyst, other_analyst, admin
):
    _seed_board(pool, analyst, other_analyst)
    at = app_as(analyst, LEADERBOARD)
    assert not at.exception
    rows = {r["model"]: r for r in _table(at, "wilson_low")}
    assert set(rows) == {"m-good", "m-cheap"}
    good, cheap = rows["m-good"], rows["m-cheap"]
    assert (good["thumbs_up"], good["thumbs_down"], good["judgements"]) == (3, 1, 4)
    assert good["thumbs_up_rate"] == pytest.approx(0.75)
    # Wilson 95 % for 3/4: centre 0.6275, half-width 0.3270
    assert (good["wilson_low"], good["wilson_high"]) == pytest.approx((0.3006, 0.9544), abs=1e-4)
    # 1/3: centre (1/3 + 0.6402) / 2.2805 = 0.4269, half-width 0.3654
    assert (cheap["wilson_low"], cheap["wilson_high"]) == pytest.approx((0.0615, 0.7923), abs=1e-4)
    assert good["cost_per_output"] == pytest.approx(0.02)
    assert good["cost_per_thumbs_up"] == pytest.approx(0.08 / 3)
    assert good["median_latency_ms"] == 200
    assert at.get("vega_lite_chart")
    assert [b.label for b in at.get("download_button")] == ["Download the leaderboard (CSV)"]

    def suggested() -> str:
        return {m.label: m.value for m in at.metric}.get("Suggested model", "")

    assert suggested() == "m-good"
    at.number_input(key="leaderboard_ceiling").set_value(0.005).run()
    assert suggested() == "m-cheap"
    at.number_input(key="leaderboard_ceiling").set_value(0.0001).run()
    assert suggested() == ""
    assert "No rated model within this ceiling." in _texts(at.warning)

    at = app_as(admin, LEADERBOARD)
    rows = {r["model"] for r in _table(at, "wilson_low")}
    assert rows == {"m-good", "m-cheap", "m-other"}


def test_the_leaderboard_table_fits_a_1440_px_screen(app_as, pool, analyst, other_analyst):
    _seed_board(pool, analyst, other_analyst)
    at = app_as(analyst, LEADERBOARD)
    [table] = [d for d in at.dataframe if "wilson_low" in d.value.columns]
    config = json.loads(table.proto.columns)
    widths = [config[name]["width"] for name in table.value.columns]
    assert len(widths) == 12
    assert all(isinstance(w, int) for w in widths)
    # The table is 979 px wide at 1440 px with the sidebar open (measured in Chromium).
    assert sum(widths) <= 979


def test_templates_page_keeps_versions_and_submits_one(app_as, pool, analyst):
    at = app_as(analyst, TEMPLATES)
    assert "No templates yet" in _texts(at.info)
    at.text_input(key="template_new_name").input("explain")
    at.text_area(key="template_new_body").input("Explain {{ c }}\nBriefly.")
    at.text_input(key="template_new_note").input("first cut")
    at.button(key="template_new_save").click().run()
    assert not at.exception
    [v1] = templates.versions(pool, "explain")
    assert (v1.version, v1.body, v1.note) == (1, "Explain {{ c }}\nBriefly.", "first cut")
    assert "Saved explain v1." in _texts(at.success)

    at.text_area(key=f"template_edit_{v1.id}_body").input("Explain {{ c }}\nIn detail.")
    at.text_input(key=f"template_edit_{v1.id}_note").input("longer")
    at.button(key="template_edit_save").click().run()
    assert not at.exception
    v2, first = templates.versions(pool, "explain")
    assert (v2.version, v2.note, first.id) == (2, "longer", v1.id)
    [row] = _table(at, "latest version")
    assert (row["name"], row["latest version"], row["by"]) == ("explain", 2, "ana")
    assert [e.label.split(" · ")[0] for e in at.expander] == ["v2", "v1"]
    diff = _texts(at.code)
    assert "-Briefly.\n+In detail." in diff and "--- explain v1" in diff

    at.button(key=f"templates_use_{v1.id}").click().run()
    assert not at.exception
    assert at.text_area(key="submit_template").value == v1.body
    assert at.selectbox(key="submit_library").value == "explain"
    assert at.selectbox(key="submit_library_version").value == 1
    at.switch_page("dashboard/submit.py")  # AppTest reruns the page it was last sent to
    at.text_area(key="submit_var_c").input("tides").run()
    at.button(key="submit_button").click().run()
    [output] = jobs.list_outputs(pool, analyst)
    assert (output.template_version_id, output.context) == (v1.id, {"c": "tides"})


def test_save_as_template_on_submit_and_edited_text_is_not_linked(app_as, pool, analyst):
    at = app_as(analyst)
    at.text_area(key="submit_template").input("Greet {{ name }}").run()
    at.text_input(key="submit_save_name").input("greet")
    at.button(key="submit_save").click().run()
    assert not at.exception
    [saved] = templates.versions(pool, "greet")
    assert saved.body == "Greet {{ name }}"
    assert "Saved as greet v1." in _texts(at.success)
    assert at.selectbox(key="submit_library_version").value == 1
    at.text_area(key="submit_var_name").input("Ana")
    at.button(key="submit_button").click().run()
    at.text_area(key="submit_template").input("Greet {{ name }} warmly").run()
    assert "Edited since greet v1" in _texts(at.caption)
    at.button(key="submit_button").click().run()
    linked = {o.template: o.template_version_id for o in jobs.list_outputs(pool, analyst)}
    assert linked == {"Greet {{ name }}": saved.id, "Greet {{ name }} warmly": None}


def test_budget_refusal_is_an_error_and_queues_nothing(
    app_as, pool, analyst, settings_env, monkeypatch, catalog_of_this_process
):
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")  # never called: nothing runs
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", "openai/priced=1000/1000")
    settings_env(MODELS="openai/priced")
    catalog_of_this_process()  # a worker configured so publishes the model and its prices
    budgets.set_budget(pool, "ana", "0.05")
    at = app_as(analyst)
    budget_bars = [bar.proto.text for bar in at.get("progress")]
    assert budget_bars == ["Spent this month: $0 of your $0.05 budget"]
    at.selectbox(key="submit_model").set_value("openai/priced")
    at.text_area(key="submit_var_concept").input("tides")
    at.button(key="submit_button").click().run()
    assert not at.exception
    assert "Not queued: monthly budget of $0.05 would be exceeded" in _texts(at.error)
    assert _counts(pool) == (0, 0)
    assert "submit_following" not in at.session_state


def _specs(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def test_analytics_cost_over_time_and_budget(app_as, pool, analyst, other_analyst, admin):
    clear_of("month")  # the spend written now is this month's when the page reads it
    for user, model, cost in (
        (analyst, "m-a", "0.01"),
        (analyst, "m-b", "0.02"),
        (other_analyst, "m-a", "0.5"),
    ):
        out = create_test_llm_output(pool, user, model=model)
        with pool.connection() as conn:
            analytics_db.set_output_figures(conn, out.id, latency_ms=10, cost=Decimal(cost))
    budgets.set_budget(pool, "ana", "1")

    def cost_charts(at) -> list[str]:
        """The colour field of each cost-over-time chart."""
        return [
            spec["encoding"]["color"]["field"]
            for spec in _specs(at)
            if spec.get("encoding", {}).get("y", {}).get("field") == "cost"
        ]

    at = app_as(analyst, ANALYTICS)
    assert not at.exception
    assert cost_charts(at) == []  # the quality view first
    at.radio(key="analytics_view").set_value("cost").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Your spend this month"] == "$0.03"
    assert (metrics["Your monthly budget"], metrics["Left this month"]) == ("$1.00", "$0.97")
    assert cost_charts(at) == ["model"]

    at = app_as(admin, ANALYTICS)
    assert not at.exception
    at.radio(key="analytics_view").set_value("cost").run()
    assert cost_charts(at) == ["model", "user_name"]
    assert {m.label: m.value for m in at.metric}["Your monthly budget"] == "none"
