"""Analytics aggregates (db/analytics.py through tasks/analytics.py) against hand-computed
figures on seeded outputs, scoped per viewer; and the Wilson interval against hand-computed
values."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from db import analytics as analytics_db
from tasks import accounts, analytics, exports, feedback, outputs
from tasks.errors import InvalidInput
from tasks.testing import create_test_llm_output
from tests.support.hostile import FORMULAS, NUMBER_AS_TEXT, neutralised

A = "offline/echo"
B = "openai/gpt-x"
T1 = "Explain {{concept}} to a beginner"
T2 = "Summarise {{text}}"


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # p = 2/3, z = 1.96: centre 0.5731, half-width 0.3654
        (2, 3, 0.2077, 0.9385),
        # p = 3/4: centre (0.75 + 0.4802) / 1.9604 = 0.6275, half-width 0.3764
        (3, 4, 0.3006, 0.9544),
        # p = 1: centre 1.19207 / 1.38415 = 0.8612, half-width 0.1388
        (10, 10, 0.7225, 1.0),
        # p = 0 mirrors p = 1
        (0, 10, 0.0, 0.2775),
    ],
)
def test_wilson_interval_matches_hand_computed(successes, n, low, high):
    got = analytics.wilson_interval(successes, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_edges():
    assert analytics.wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        analytics.wilson_interval(5, 4)


def _seed(
    pool,
    user,
    *,
    model,
    template=T1,
    status="completed",
    feedback="none",
    latency_ms=None,
    cost=None,
    created_at=None,
):
    out = create_test_llm_output(
        pool, user, model=model, template=template, status=status, feedback=feedback
    )
    with pool.connection() as conn:
        analytics_db.set_output_figures(
            conn, out.id, latency_ms=latency_ms, cost=cost, created_at=created_at
        )
    return out


@pytest.fixture
def seeded(pool, analyst, other_analyst) -> datetime:
    """ana: model A 3 up, 1 down, 1 unrated (latencies 100..500 ms, $0.01 each) and 1 failed;
    model B 1 up, 2 down ($0.02 each, T2) and 2 failed; plus one A thumbs-up 40 days ago.
    otto: model A 2 down. All but the old one created at one moment, a minute ago: returned,
    so that no day or hour boundary falls between them."""
    at = datetime.now(UTC) - timedelta(minutes=1)
    for i, fb in enumerate(["thumbs_up", "thumbs_up", "thumbs_up", "thumbs_down", "none"]):
        _seed(
            pool, analyst, model=A, feedback=fb, latency_ms=100 * (i + 1), cost=0.01, created_at=at
        )
    _seed(pool, analyst, model=A, status="failed", created_at=at)
    for fb in ["thumbs_up", "thumbs_down", "thumbs_down"]:
        _seed(
            pool,
            analyst,
            model=B,
            template=T2,
            feedback=fb,
            latency_ms=1000,
            cost=0.02,
            created_at=at,
        )
    _seed(pool, analyst, model=B, template=T2, status="failed", created_at=at)
    _seed(pool, analyst, model=B, template=T2, status="failed", created_at=at)
    old = at - timedelta(days=40)
    _seed(pool, analyst, model=A, feedback="thumbs_up", latency_ms=50, cost=1, created_at=old)
    for _ in range(2):
        _seed(
            pool,
            other_analyst,
            model=A,
            feedback="thumbs_down",
            latency_ms=900,
            cost=0.5,
            created_at=at,
        )
    return at


def _last_30_days(**kw):
    today = datetime.now(UTC).date()
    return analytics.output_filter(start=today - timedelta(days=29), end=today, **kw)


def test_model_quality_for_an_analyst(pool, analyst, seeded):
    rows = {r.model: r for r in analytics.model_quality(pool, analyst, _last_30_days())}
    a, b = rows[A], rows[B]
    assert (a.outputs, a.completed, a.failed) == (6, 5, 1)
    assert (a.thumbs_up, a.thumbs_down, a.rated) == (3, 1, 4)
    assert a.thumbs_up_rate == pytest.approx(0.75)
    assert (a.ci_low, a.ci_high) == pytest.approx((0.3006, 0.9544), abs=1e-4)
    assert a.failure_rate == pytest.approx(1 / 6)
    # percentile_cont over 100, 200, 300, 400, 500: p50 300, p95 400 + 0.8 * 100
    assert a.latency_p50_ms == pytest.approx(300)
    assert a.latency_p95_ms == pytest.approx(480)
    assert a.cost == Decimal("0.05")
    assert float(a.cost_per_thumbs_up) == pytest.approx(0.05 / 3)
    assert (b.outputs, b.failed, b.thumbs_up, b.thumbs_down) == (5, 2, 1, 2)
    assert b.failure_rate == pytest.approx(2 / 5)
    assert float(b.cost_per_thumbs_up) == pytest.approx(0.06)
    total = analytics.totals(list(rows.values()))
    assert (total.outputs, total.rated, total.thumbs_up) == (11, 7, 4)
    assert total.thumbs_up_rate == pytest.approx(4 / 7)


def test_scope_admin_everyone_or_one_user_analyst_only_own(
    pool, analyst, other_analyst, admin, seeded
):
    everyone = {r.model: r for r in analytics.model_quality(pool, admin, _last_30_days())}
    assert everyone[A].thumbs_down == 3 and everyone[A].outputs == 8
    one = {
        r.model: r
        for r in analytics.model_quality(pool, admin, _last_30_days(user_id=other_analyst.id))
    }
    assert set(one) == {A} and one[A].thumbs_down == 2 and one[A].thumbs_up == 0
    # an analyst asking for someone else still gets only their own outputs
    own = {
        r.model: r
        for r in analytics.model_quality(pool, analyst, _last_30_days(user_id=other_analyst.id))
    }
    assert own[A].thumbs_down == 1 and own[A].outputs == 6


def test_date_range_and_model_and_template_filters(pool, analyst, seeded):
    no_range = {
        r.model: r for r in analytics.model_quality(pool, analyst, analytics.OutputFilter())
    }
    assert no_range[A].thumbs_up == 4  # the output from 40 days ago counts without a range
    only_b = analytics.model_quality(pool, analyst, _last_30_days(model=B))
    assert [r.model for r in only_b] == [B]
    only_t2 = analytics.model_quality(pool, analyst, _last_30_days(template=T2))
    assert [(r.model, r.outputs) for r in only_t2] == [(B, 5)]
    with pytest.raises(InvalidInput):
        analytics.output_filter(start=datetime(2026, 2, 2).date(), end=datetime(2026, 2, 1).date())


def test_over_time_volume_and_templates(pool, analyst, seeded):
    flt = _last_30_days()
    assert analytics.bucket_for(flt) == "day"
    points = {p.model: p for p in analytics.feedback_over_time(pool, analyst, flt)}
    assert (points[A].rated, points[A].thumbs_up) == (4, 3)
    assert points[B].thumbs_up_rate == pytest.approx(1 / 3)
    volume = {v.status: v.outputs for v in analytics.volume_over_time(pool, analyst, flt)}
    assert volume == {"completed": 8, "failed": 3}
    top = analytics.top_templates(pool, analyst, flt, limit=1)
    assert [(t.label, t.thumbs_up, t.thumbs_down) for t in top] == [(T1, 3, 1)]
    # the seeded rows' own day, whenever the test runs
    short = analytics.output_filter(start=seeded.date(), end=seeded.date())
    assert analytics.bucket_for(short) == "hour"
    hourly = analytics.feedback_over_time(pool, analyst, short)
    assert sum(p.rated for p in hourly) == 7


def test_feedback_csv_holds_only_the_viewers_rated_outputs(pool, analyst, admin, seeded):
    rows = list(csv.DictReader(io.StringIO(analytics.feedback_csv(pool, analyst, _last_30_days()))))
    assert len(rows) == 7
    assert {r["user_name"] for r in rows} == {"ana"}
    assert {r["feedback"] for r in rows} == {"thumbs_up", "thumbs_down"}
    assert set(rows[0]) >= {"output_id", "created_at", "model", "feedback", "template", "cost"}
    everyone = analytics.feedback_csv(pool, admin, _last_30_days())
    assert len(list(csv.DictReader(io.StringIO(everyone)))) == 9


def test_feedback_csv_round_trips_awkward_text_times_and_figures(pool, analyst):
    template = 'Say "hi", then {{x}}\nand stop; 50% off'
    when = datetime.now(UTC).replace(microsecond=123456) - timedelta(hours=2)
    rated = _seed(
        pool,
        analyst,
        model=A,
        template=template,
        latency_ms=250,
        cost=0.0125,
        created_at=when,
    )
    rated_at = feedback.set_feedback(pool, rated.id, analyst, "thumbs_down").created_at
    _seed(pool, analyst, model=A, feedback="none")  # not rated: not exported
    text = analytics.feedback_csv(pool, analyst, _last_30_days())
    assert text.splitlines()[0] == (
        "output_id,created_at,user_name,model,format,feedback,feedback_at,latency_ms,cost,template,"
        "reasons,comment,corrected_answer,judge_verdicts"
    )
    (row,) = csv.DictReader(io.StringIO(text))
    assert int(row["output_id"]) == rated.id
    assert row["template"] == template
    assert row["created_at"].endswith("Z")
    assert datetime.fromisoformat(row["created_at"]) == when
    assert datetime.fromisoformat(row["feedback_at"]) == rated_at
    assert (row["feedback"], row["latency_ms"], Decimal(row["cost"])) == (
        "thumbs_down",
        "250",
        Decimal("0.0125"),
    )
    assert (
        len(
            list(
                csv.DictReader(
                    io.StringIO(analytics.feedback_csv(pool, analyst, _last_30_days(), limit=0))
                )
            )
        )
        == 0
    )


def test_feedback_csv_keeps_formulas_as_text_and_numbers_as_numbers(pool):
    user = accounts.create_user(pool, "@evil")
    for template in [*FORMULAS, NUMBER_AS_TEXT]:
        _seed(
            pool,
            user,
            model="-1+x",
            template=template,
            feedback="thumbs_up",
            latency_ms=7,
            cost=0.5,
        )
    flt = analytics.output_filter()
    table = list(csv.DictReader(io.StringIO(analytics.feedback_csv(pool, user, flt))))
    # newest first
    assert [r["template"] for r in reversed(table)] == [
        *map(neutralised, FORMULAS),
        NUMBER_AS_TEXT,
    ]
    assert {(r["user_name"], r["model"], r["latency_ms"], r["cost"]) for r in table} == {
        ("'@evil", "'-1+x", "7", "0.50000000")
    }
    exported = [json.loads(line) for line in exports.export_jsonl(pool, user)]
    assert [(r["template"], r["model"]) for r in exported] == [
        (template, "-1+x") for template in [*FORMULAS, NUMBER_AS_TEXT]
    ]


def test_templates_used_lists_every_template_by_its_latest_use(pool, analyst, other_analyst):
    t1, t2, t3, t4 = (f"t{i} {{{{x}}}}" for i in range(1, 5))
    for template in (t1, t2, t3, t2):  # t2 again last
        create_test_llm_output(pool, analyst, template=template)
    create_test_llm_output(pool, other_analyst, template=t4)

    def used(user_id, **kw):
        with pool.connection() as conn:
            return [t.template for t in analytics_db.templates_used(conn, user_id, **kw)]

    assert used(analyst.id, limit=10) == [t2, t3, t1]
    assert used(analyst.id, limit=2) == [t2, t3]
    assert used(None, limit=10) == [t4, t2, t3, t1]
    # Every template, however far back: the skip scan ignores the `scan` window.
    assert used(analyst.id, limit=10, most=3, scan=1) == [t2, t3, t1]
    # More templates than the skip scan takes: those of the latest `scan` outputs.
    assert used(analyst.id, limit=10, most=2, scan=2) == [t2, t3]
    assert used(None, limit=10, most=2, scan=1) == [t4]


def test_filter_choices_and_lineage(pool, analyst, other_analyst, admin, seeded):
    with pool.connection() as conn:
        assert analytics_db.models_used(conn, None) == [A, B]
        assert analytics_db.models_used(conn, other_analyst.id) == [A]
    mine = analytics.filter_choices(pool, analyst)
    assert mine.models == [A, B]  # by name
    assert set(mine.templates) == {T1, T2}
    assert analytics.filter_choices(pool, admin).models == [A, B]
    parent = create_test_llm_output(pool, analyst)

    child = outputs.re_run(pool, parent.id, analyst)
    other_child = outputs.re_run(pool, parent.id, admin)
    family = analytics.lineage(pool, parent, analyst)
    assert family.parent_id is None
    assert [c.id for c in family.children] == [child.output_id]  # the admin's re-run is not ana's
    assert [c.id for c in analytics.lineage(pool, parent, admin).children] == [
        child.output_id,
        other_child.output_id,
    ]
    made = outputs.get_output(pool, child.output_id, analyst)
    assert analytics.lineage(pool, made, analyst).parent_id == parent.id
    assert analytics.lineage(pool, made, other_analyst).parent_id is None


def test_a_long_range_whose_outputs_fall_on_a_day_is_drawn_per_hour(pool, analyst):
    day = datetime.combine(datetime.now(UTC).date() - timedelta(days=5), time(9), UTC)
    for hours in (0, 0, 3):
        _seed(pool, analyst, model=A, feedback="thumbs_up", created_at=day + timedelta(hours=hours))
    flt = _last_30_days()
    assert analytics.bucket_for(flt) == "day"
    # a line over the day's hours, not a single daily dot
    volume = analytics.volume_over_time(pool, analyst, flt)
    assert [(v.bucket, v.outputs) for v in volume] == [(day, 2), (day + timedelta(hours=3), 1)]
    rates = analytics.feedback_over_time(pool, analyst, flt)
    assert [p.bucket for p in rates] == [day, day + timedelta(hours=3)]
    # outputs spread over several days stay daily
    _seed(pool, analyst, model=A, feedback="thumbs_up", created_at=day - timedelta(days=3))
    volume = analytics.volume_over_time(pool, analyst, flt)
    assert [v.bucket for v in volume] == [
        day.replace(hour=0) - timedelta(days=3),
        day.replace(hour=0),
    ]


def test_by_template_lists_the_rated_templates(pool, analyst):
    _seed(pool, analyst, model=A, template=T1, feedback="thumbs_up")
    _seed(pool, analyst, model=A, template=T2)
    top = analytics.top_templates(pool, analyst, _last_30_days())
    assert [(t.label, t.thumbs_up) for t in top] == [(T1, 1)]


def test_time_axes_name_their_buckets():
    import pandas as pd

    from dashboard import charts

    hours = pd.DataFrame({"bucket": [datetime(2026, 3, 1, 9, tzinfo=UTC)]})
    days = pd.DataFrame({"bucket": [datetime(2026, 3, 1, tzinfo=UTC)]})
    assert charts.time_axis(hours)["title"] == "created, per hour (UTC)"
    assert charts.time_axis(days) == {
        "title": "created, per day (UTC)",
        "format": "%b %d",
        "labelAngle": -30,
    }
