"""Analytics, Queues and Agents pages: figures match hand-computed ones per viewer, the queues
are for admins only and their retry and cancel buttons work, agents are created and edited."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from procrastinate.jobs import Status

from db import analytics as analytics_db
from db import outputs as outputs_db
from tasks import agents as agent_cases
from tasks import outputs as jobs
from tasks.testing import create_test_llm_output

ANALYTICS = "dashboard/analytics.py"
QUEUES = "dashboard/queues.py"
AGENTS = "dashboard/agents.py"


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def _by_model(at) -> dict[str, dict]:
    [table] = [d.value for d in at.dataframe if "thumbs_up_rate" in d.value.columns]
    return {row["model"]: row for row in table.to_dict("records")}


def test_analytics_page_figures_per_viewer(app_as, pool, analyst, other_analyst, admin):
    for feedback in ["thumbs_up", "thumbs_up", "thumbs_down", "none"]:
        create_test_llm_output(pool, analyst, feedback=feedback)
    create_test_llm_output(pool, analyst, status="failed")
    create_test_llm_output(pool, other_analyst, feedback="thumbs_down")

    at = app_as(analyst, ANALYTICS)
    assert not at.exception
    row = _by_model(at)["offline/echo"]
    assert (row["outputs"], row["rated"], row["thumbs_up"], row["thumbs_down"]) == (5, 3, 2, 1)
    # rates in percent, shown with one decimal
    assert row["thumbs_up_rate"] == pytest.approx(200 / 3)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((20.77, 93.85), abs=1e-2)
    assert row["failure_rate"] == pytest.approx(100 / 5)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Outputs"] == "5" and metrics["Thumbs-up rate"] == "66.7 %"
    # one view at a time: quality first, then volume and speed, then cost
    drawn = {"quality": len(at.get("vega_lite_chart"))}
    for view in ("operations", "cost"):
        at.radio(key="analytics_view").set_value(view).run()
        assert not at.exception
        drawn[view] = len(at.get("vega_lite_chart"))
    assert drawn["quality"] == 3 and drawn["operations"] == 3, drawn
    assert [b.label for b in at.get("download_button")] == ["Download the feedback (CSV)"]

    at = app_as(admin, ANALYTICS)
    row = _by_model(at)["offline/echo"]
    assert (row["outputs"], row["thumbs_down"]) == (6, 2)
    at.selectbox(key="analytics_user").set_value(other_analyst.id).run()
    row = _by_model(at)["offline/echo"]
    assert (row["outputs"], row["thumbs_up"], row["thumbs_down"]) == (1, 0, 1)


def test_analytics_page_with_no_outputs(app_as, analyst):
    at = app_as(analyst, ANALYTICS)
    assert not at.exception
    assert "No outputs in this range." in _texts(at.info)


def test_queues_are_for_admins_only(app_as, analyst):
    at = app_as(analyst, QUEUES)
    assert not at.exception
    assert "Admins only" in _texts(at.error)
    assert not at.main.button


def test_queues_cancel_button_cancels_a_waiting_job(app_as, pool, analyst, admin):
    sub = jobs.submit(
        pool, user=analyst, template="Hi {{x}}", context={"x": "1"}, model="offline/echo"
    )
    at = app_as(admin, QUEUES)
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Waiting"] == "1"
    at.button(key=f"cancel_{sub.job_id}").click().run()
    assert not at.exception
    assert f"Job {sub.job_id} cancelled (output #{sub.output_id})." in _texts(at.success)
    output = jobs.get_output(pool, sub.output_id, analyst)
    assert (output.status, output.error_message) == ("failed", "cancelled by root-admin")
    assert not [b for b in at.button if b.key == f"cancel_{sub.job_id}"]


async def test_queues_retry_button_requeues_a_failed_job(app_as, pool, analyst, admin, opened_app):
    sub = jobs.submit(
        pool, user=analyst, template="Hi {{x}}", context={"x": "1"}, model="offline/echo"
    )
    manager = opened_app.job_manager
    job = await manager.fetch_job(queues=None, worker_id=None)
    await manager.finish_job(job, status=Status.FAILED, delete_job=False)
    with pool.connection() as conn:
        outputs_db.set_output_state(
            conn, sub.output_id, status="failed", error_message="provider said no"
        )
    at = app_as(admin, QUEUES)
    assert ":red[provider said no]" in _texts(at.markdown)
    at.button(key=f"retry_{sub.job_id}").click().run()
    assert not at.exception
    assert f"Job {sub.job_id} queued again (output #{sub.output_id})." in _texts(at.success)
    assert jobs.get_output(pool, sub.output_id, analyst).status == "pending"
    assert {m.label: m.value for m in at.metric}["Waiting"] == "1"


def test_agents_create_edit_and_use_in_submit(app_as, pool, analyst):
    at = app_as(analyst, AGENTS)
    assert not at.exception
    at.text_input(key="agent_new_name").input("Critic")
    at.text_input(key="agent_new_description").input("Finds holes")
    at.text_area(key="agent_new_system_prompt").input("Be critical.")
    at.selectbox(key="agent_new_format").set_value("markdown")
    at.button(key="agent_new_save").click().run()
    assert not at.exception
    [agent] = agent_cases.list_agents(pool)
    assert (agent.name, agent.system_prompt, agent.default_format) == (
        "Critic",
        "Be critical.",
        "markdown",
    )
    assert "Agent Critic created." in _texts(at.success)
    # Set, not only deleted: set_value is what makes a browser show the emptied field.
    for field in ("name", "description"):
        emptied = at.text_input(key=f"agent_new_{field}")
        assert (emptied.value, emptied.proto.set_value) == ("", True)
    emptied = at.text_area(key="agent_new_system_prompt")
    assert (emptied.value, emptied.proto.set_value) == ("", True)
    assert at.selectbox(key="agent_new_format").value == "text"

    at.text_input(key="agent_new_name").input("Critic")
    at.button(key="agent_new_save").click().run()
    assert "exists" in _texts(at.error)

    at.text_area(key=f"agent_edit_{agent.id}_system_prompt").input("Be kind.")
    at.button(key=f"agent_edit_{agent.id}_save").click().run()
    assert agent_cases.list_agents(pool)[0].system_prompt == "Be kind."

    at.button(key="agents_use").click().run()
    assert not at.exception
    assert "Submit" in at.title[0].value
    assert at.selectbox(key="submit_agent").value == agent.id
    assert at.selectbox(key="submit_format").value == "markdown"


def _captions(at) -> str:
    return " ".join(str(c.value) for c in at.caption)


def test_analytics_rates_show_their_basis_and_cancelled_is_not_a_failure(app_as, pool, analyst):
    for feedback in ["thumbs_up", "thumbs_up", "none", "none", "none", "none"]:
        create_test_llm_output(pool, analyst, feedback=feedback)
    create_test_llm_output(pool, analyst, status="failed", error_message="model error")
    create_test_llm_output(pool, analyst, status="failed", error_message="cancelled by ana")

    at = app_as(analyst, ANALYTICS)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Failed"], metrics["Cancelled"]) == ("1", "1")
    assert metrics["Thumbs-up rate"] == "100 %"
    assert "100 % of 2 rated, 8 outputs" in _captions(at)
    # 1 failed of 7 finished: the cancelled output is neither
    assert "Failure rate 14.3 % of 7 finished, 8 outputs" in _captions(at)
    row = _by_model(at)["offline/echo"]
    assert (row["failed"], row["cancelled"]) == (1, 1)
    assert row["failure_rate"] == pytest.approx(100 / 7)
    # the offline model costs nothing: said in words, not drawn as empty $0 charts
    at.radio(key="analytics_view").set_value("cost").run()
    assert not at.exception
    assert "used offline models, which cost nothing" in _captions(at)
    assert not [
        c for c in at.get("vega_lite_chart") if "cost" in json.dumps(json.loads(c.proto.spec))
    ]


def test_analytics_failure_rate_leaves_cancelled_out_over_a_long_range(pool, analyst):
    """The rolled-up path (a range longer than a few days) counts cancelled outputs apart too."""
    from tasks import analytics

    old = datetime.now(UTC) - timedelta(days=5)
    made = [
        create_test_llm_output(pool, analyst, status="failed", error_message=message)
        for message in ["model error", "cancelled by ana", "cancelled by root"]
    ] + [create_test_llm_output(pool, analyst)]
    with pool.connection() as conn:
        for out in made:
            analytics_db.set_output_figures(conn, out.id, latency_ms=10, cost=0, created_at=old)
    today = datetime.now(UTC).date()
    flt = analytics.output_filter(start=today - timedelta(days=29), end=today)
    [row] = analytics.model_quality(pool, analyst, flt)
    assert (row.failed, row.cancelled, row.completed) == (1, 2, 1)
    assert row.failure_rate == pytest.approx(1 / 2)
    volume = {v.status: v.outputs for v in analytics.volume_over_time(pool, analyst, flt)}
    assert volume == {"failed": 1, "cancelled": 2, "completed": 1}


def test_analytics_percent_and_zero_cost_reasons():
    from tasks import analytics

    assert [analytics.percent(r) for r in (0, 0.125, 1, 1 / 3, None)] == [
        "0 %",
        "12.5 %",
        "100 %",
        "33.3 %",
        "–",
    ]
    assert analytics.rate_basis(2, 2, "rated", 8) == "100 % of 2 rated, 8 outputs"
    offline = {"offline/echo"}
    assert "offline models" in analytics.zero_cost_reason(Decimal(0), ["offline/echo"], offline)
    assert "No prices known" in analytics.zero_cost_reason(None, ["openai/llama"], offline)
    assert analytics.zero_cost_reason(Decimal("0.5"), ["openai/llama"], offline) is None
