"""The Analytics page's Reasons view: thumbs-down reasons by model, by template and over time
with their basis, per viewer, and an empty state that says what to do."""

from __future__ import annotations

from tasks import feedback
from tasks.testing import create_test_llm_output

ANALYTICS = "dashboard/analytics.py"


def _down(pool, user, reasons, model="offline/echo"):
    out = create_test_llm_output(pool, user, model=model)
    feedback.set_feedback(pool, out.id, user, "thumbs_down", reasons=reasons or None)
    return out


def _reasons_view(app_as, user):
    at = app_as(user, ANALYTICS)
    assert not at.exception
    at.radio(key="analytics_view").set_value("reasons").run()
    assert not at.exception
    return at


def _table(at) -> dict[tuple[str, str], str]:
    [table] = [d.value for d in at.dataframe if "basis_text" in d.value.columns]
    return {(r["model"], r["reason"]): r["basis_text"] for r in table.to_dict("records")}


def test_reasons_view_per_viewer(app_as, pool, analyst, other_analyst, admin):
    _down(pool, analyst, ["wrong", "incomplete"])
    _down(pool, analyst, ["wrong"])
    _down(pool, analyst, [])
    _down(pool, analyst, ["off-format"], model="offline/brief")
    _down(pool, other_analyst, ["unsafe"])

    at = _reasons_view(app_as, analyst)
    assert len(at.get("vega_lite_chart")) == 3  # by model, over time, by template
    assert _table(at) == {
        ("offline/echo", "wrong"): "wrong: 2 of 2 thumbs-down with a reason",
        ("offline/echo", "incomplete"): "incomplete: 1 of 2 thumbs-down with a reason",
        ("offline/brief", "off-format"): "off-format: 1 of 1 thumbs-down with a reason",
    }
    captions = " ".join(c.value for c in at.caption)
    assert "3 of the 4 thumbs-down outputs in this range give a reason" in captions

    at = _reasons_view(app_as, admin)
    table = _table(at)
    assert table[("offline/echo", "unsafe")] == "unsafe: 1 of 3 thumbs-down with a reason"
    assert table[("offline/echo", "wrong")] == "wrong: 2 of 3 thumbs-down with a reason"


def test_reasons_view_says_what_to_do_when_no_thumbs_down_has_a_reason(app_as, pool, analyst):
    _down(pool, analyst, [])
    out = create_test_llm_output(pool, analyst)
    feedback.set_feedback(pool, out.id, analyst, "thumbs_up", reasons=["great"])
    at = _reasons_view(app_as, analyst)
    info = " ".join(i.value for i in at.info)
    assert "No thumbs-down in this range has a reason yet" in info
    assert "pick a reason" in info
    assert not at.get("vega_lite_chart")


def test_reason_charts_are_valid_vega_lite_with_their_basis():
    import json
    from datetime import UTC, datetime

    import altair as alt

    from dashboard import charts
    from db.reasons import ModelReason, ReasonPoint

    by_model = charts.reason_rows([ModelReason(model="m", reason="wrong", outputs=12, basis=40)])
    assert by_model["share"].tolist() == [0.3]
    assert by_model["basis_text"].tolist() == ["wrong: 12 of 40 thumbs-down with a reason"]
    day = datetime(2026, 3, 1, tzinfo=UTC)
    points = charts.reason_rows([ReasonPoint(bucket=day, reason="wrong", outputs=1, basis=2)])
    for chart in (
        charts.reasons_grid(by_model, "model", "model"),
        charts.reasons_over_time(points),
    ):
        values = json.loads(chart.data.to_json(orient="records", date_format="iso"))
        alt.Chart.from_dict({**chart.spec, "data": {"values": values}}, validate=True)
    assert charts.reason_rows([]).empty


def test_the_demo_month_fills_the_reasons_view_and_the_judges_page(app_as, pool, admin):
    from tasks import demo

    demo.seed(pool)
    at = _reasons_view(app_as, admin)
    assert len(at.get("vega_lite_chart")) == 3
    assert not at.info  # no empty state: the demo's thumbs-down give reasons
    at = app_as(admin, "dashboard/judges.py")
    [judge] = [j for j in at.selectbox(key="judges_pick").options if j != "New judge"]
    assert judge == demo.JUDGE
    at.selectbox(key="judges_pick").select_index(1).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Outputs with both"].replace(",", "")) >= 30
    assert 0.2 < float(metrics["Cohen's kappa"]) < 1  # calibration is meaningful


def test_a_link_opens_the_reasons_view(app_as, pool, analyst):
    _down(pool, analyst, ["wrong"])
    at = app_as(analyst, ANALYTICS, view="reasons")
    assert not at.exception
    assert at.radio(key="analytics_view").value == "reasons"
    assert len(at.get("vega_lite_chart")) == 3
    for asked in ({}, {"view": "nonsense"}):
        plain = app_as(analyst, ANALYTICS, **asked)
        assert not plain.exception and plain.radio(key="analytics_view").value == "quality"
