"""Schema-valid rates per model (first try and after re-asks): computed in SQL over the outputs
judged against a JSON Schema, scoped to the viewer, and shown on Analytics and the Leaderboard."""

from __future__ import annotations

from db import outputs as outputs_db
from tasks import analytics
from tasks.testing import create_test_llm_output

SCHEMA = {"type": "object", "required": ["answer"]}
ANALYTICS = "dashboard/analytics.py"
LEADERBOARD = "dashboard/leaderboard.py"


def _judged(pool, user, model: str, valid: bool, first_try: bool) -> None:
    out = create_test_llm_output(
        pool,
        user,
        model=model,
        format="json",
        json_schema=SCHEMA,
        status="completed" if valid else "failed",
        raw_response='{"answer": 1}',
        parsed_output={"answer": 1},
    )
    with pool.connection() as conn:
        outputs_db.set_schema_outcome(conn, out.id, valid=valid, first_try=first_try)


def _seed(pool, analyst, other_analyst) -> None:
    for valid, first_try in [(True, True)] * 3 + [(True, False), (False, False)]:
        _judged(pool, analyst, "offline/brief", valid, first_try)
    _judged(pool, other_analyst, "offline/brief", False, False)  # not ana's
    create_test_llm_output(pool, analyst, model="offline/verbose")  # no schema: not judged
    create_test_llm_output(
        pool, analyst, model="offline/brief", format="json", json_schema=SCHEMA, status="pending"
    )  # not finished: not judged


def test_schema_rates_per_model_first_try_and_after_reasks(pool, analyst, other_analyst, admin):
    _seed(pool, analyst, other_analyst)
    [brief] = analytics.schema_rates(pool, analyst, analytics.output_filter())
    assert (brief.model, brief.judged, brief.first_try, brief.valid) == ("offline/brief", 5, 3, 4)
    assert (brief.first_try_rate, brief.valid_rate) == (0.6, 0.8)
    low, high = brief.valid_ci
    assert low < 0.8 < high
    [everyone] = analytics.schema_rates(pool, admin, analytics.output_filter())
    assert (everyone.judged, everyone.valid) == (6, 4)
    assert analytics.schema_rates(pool, analyst, analytics.output_filter(model="offline/x")) == []


def test_analytics_and_leaderboard_show_the_rates_with_their_basis(
    pool, analyst, other_analyst, app_as
):
    _seed(pool, analyst, other_analyst)
    for page in (ANALYTICS, LEADERBOARD):
        at = app_as(analyst, page)
        assert not at.exception
        assert any("Schema-valid answers by model" in s.value for s in at.subheader), page
        [table] = [d for d in at.dataframe if "valid at the first try" in d.value.columns]
        [row] = table.value.to_dict("records")
        assert row["model"] == "offline/brief"
        assert row["valid at the first try"] == "60 % (3 of 5)"
        assert row["valid after re-asks"] == "80 % (4 of 5)"


def test_no_schema_section_on_analytics_without_schema_outputs(pool, analyst, app_as):
    create_test_llm_output(pool, analyst)
    at = app_as(analyst, ANALYTICS)
    assert not at.exception
    assert not any("Schema-valid" in s.value for s in at.subheader)
