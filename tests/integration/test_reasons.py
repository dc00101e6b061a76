"""Thumbs-down reasons by model, by template and over time (db/reasons.py through
tasks/analytics.py) against hand-counted outputs, within the filters and the viewer's scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db import analytics as analytics_db
from db.queries import queries
from tasks import analytics, feedback
from tasks.errors import InvalidInput
from tasks.testing import create_test_llm_output

A = "offline/echo"
B = "openai/gpt-x"
T1 = "Explain {{concept}} to a beginner"
T2 = "Summarise {{text}}"


def _rated(pool, user, model, template, thumb, reasons, created_at):
    out = create_test_llm_output(pool, user, model=model, template=template)
    feedback.set_feedback(pool, out.id, user, thumb, reasons=reasons or None)
    with pool.connection() as conn:
        analytics_db.set_output_figures(
            conn, out.id, latency_ms=None, cost=None, created_at=created_at
        )
    return out


@pytest.fixture
def seeded(pool, analyst, other_analyst) -> datetime:
    """ana, model A and T1: down (wrong, incomplete), down (wrong), down with no reason, up
    (great); model B and T2: down (off-format), down (wrong, off-format), and two days earlier
    down (too long). otto, model A and T1: down (unsafe). Returns the moment of the recent ones."""
    at = datetime.now(UTC) - timedelta(minutes=1)
    earlier = at - timedelta(days=2)
    for model, template, thumb, reasons, when in [
        (A, T1, "thumbs_down", ["wrong", "incomplete"], at),
        (A, T1, "thumbs_down", ["wrong"], at),
        (A, T1, "thumbs_down", [], at),
        (A, T1, "thumbs_up", ["great"], at),
        (B, T2, "thumbs_down", ["off-format"], at),
        (B, T2, "thumbs_down", ["wrong", "off-format"], at),
        (B, T2, "thumbs_down", ["too long"], earlier),
    ]:
        _rated(pool, analyst, model, template, thumb, reasons, when)
    _rated(pool, other_analyst, A, T1, "thumbs_down", ["unsafe"], at)
    return at


def _last_30_days(**kw):
    today = datetime.now(UTC).date()
    return analytics.output_filter(start=today - timedelta(days=29), end=today, **kw)


def _counts(rows, key):
    return {(getattr(r, key), r.reason): (r.outputs, r.basis) for r in rows}


def test_reasons_by_model_for_an_analyst(pool, analyst, seeded):
    rows = analytics.reasons_by_model(pool, analyst, _last_30_days())
    assert _counts(rows, "model") == {
        (A, "wrong"): (2, 2),
        (A, "incomplete"): (1, 2),
        (B, "off-format"): (2, 3),
        (B, "wrong"): (1, 3),
        (B, "too long"): (1, 3),
    }
    # by model, the most given first
    assert [(r.model, r.reason) for r in rows][:2] == [(A, "wrong"), (A, "incomplete")]
    assert analytics.reason_basis("wrong", 12, 40) == "wrong: 12 of 40 thumbs-down with a reason"


def test_scope_admin_everyone_or_one_user_analyst_only_own(
    pool, analyst, other_analyst, admin, seeded
):
    everyone = _counts(analytics.reasons_by_model(pool, admin, _last_30_days()), "model")
    assert everyone[(A, "wrong")] == (2, 3) and everyone[(A, "unsafe")] == (1, 3)
    one = analytics.reasons_by_model(pool, admin, _last_30_days(user_id=other_analyst.id))
    assert _counts(one, "model") == {(A, "unsafe"): (1, 1)}
    # an analyst asking for someone else still gets only their own outputs
    own = analytics.reasons_by_model(pool, analyst, _last_30_days(user_id=other_analyst.id))
    assert (A, "unsafe") not in _counts(own, "model")
    assert _counts(own, "model")[(A, "wrong")] == (2, 2)


def test_filters_model_template_and_dates(pool, analyst, seeded):
    only_b = analytics.reasons_by_model(pool, analyst, _last_30_days(model=B))
    assert {r.model for r in only_b} == {B}
    only_t1 = analytics.reasons_by_model(pool, analyst, _last_30_days(template=T1))
    assert _counts(only_t1, "model") == {(A, "wrong"): (2, 2), (A, "incomplete"): (1, 2)}
    day = analytics.output_filter(start=seeded.date(), end=seeded.date())
    recent = _counts(analytics.reasons_by_model(pool, analyst, day), "model")
    assert (B, "too long") not in recent and recent[(B, "off-format")] == (2, 2)


def test_reasons_by_template(pool, analyst, seeded):
    rows = analytics.reasons_by_template(pool, analyst, _last_30_days())
    assert _counts(rows, "label") == {
        (T1, "wrong"): (2, 2),
        (T1, "incomplete"): (1, 2),
        (T2, "off-format"): (2, 3),
        (T2, "wrong"): (1, 3),
        (T2, "too long"): (1, 3),
    }
    # the templates with the most thumbs-down with a reason, those first
    top = analytics.reasons_by_template(pool, analyst, _last_30_days(), limit=1)
    assert {r.label for r in top} == {T2}
    assert rows[0].label == T2
    with pytest.raises(InvalidInput):
        analytics.reasons_by_template(pool, analyst, _last_30_days(), limit=0)


def test_reasons_over_time_bucketed_as_the_page(pool, analyst, seeded):
    flt = _last_30_days()
    assert analytics.bucket_for(flt) == "day"
    points = analytics.reasons_over_time(pool, analyst, flt)
    day = seeded.replace(hour=0, minute=0, second=0, microsecond=0)
    earlier = day - timedelta(days=2)
    assert {(p.bucket, p.reason): (p.outputs, p.basis) for p in points} == {
        (earlier, "too long"): (1, 1),
        (day, "wrong"): (3, 4),
        (day, "off-format"): (2, 4),
        (day, "incomplete"): (1, 4),
    }
    assert [p.bucket for p in points] == sorted(p.bucket for p in points)
    # a short range is per hour
    hourly = analytics.reasons_over_time(
        pool, analyst, analytics.output_filter(start=seeded.date(), end=seeded.date())
    )
    assert {p.bucket for p in hourly} == {seeded.replace(minute=0, second=0, microsecond=0)}


def test_a_long_range_whose_reasons_fall_on_a_day_is_drawn_per_hour(pool, analyst):
    day = datetime.combine(datetime.now(UTC).date() - timedelta(days=5), datetime.min.time(), UTC)
    for hours in (9, 9, 12):
        _rated(pool, analyst, A, T1, "thumbs_down", ["wrong"], day + timedelta(hours=hours))
    points = analytics.reasons_over_time(pool, analyst, _last_30_days())
    assert [(p.bucket, p.outputs, p.basis) for p in points] == [
        (day + timedelta(hours=9), 2, 2),
        (day + timedelta(hours=12), 1, 1),
    ]


def test_no_reasons_no_rows(pool, analyst):
    create_test_llm_output(pool, analyst, feedback="thumbs_down")
    flt = _last_30_days()
    assert analytics.reasons_by_model(pool, analyst, flt) == []
    assert analytics.reasons_by_template(pool, analyst, flt) == []
    assert analytics.reasons_over_time(pool, analyst, flt) == []


SEED_MANY = """
INSERT INTO llm_outputs (user_id, template, model, format, status, feedback, feedback_reasons,
                         created_at, completed_at)
SELECT %(user_id)s, 'Template ' || (g %% 7), 'model-' || (g %% 5), 'text', 'completed',
       CASE WHEN g %% 3 = 0 THEN 'thumbs_down' WHEN g %% 3 = 1 THEN 'thumbs_up' ELSE 'none' END,
       CASE WHEN g %% 150 = 0 THEN ARRAY['wrong'] ELSE '{}' END,
       now() - interval '60 days' * g / %(n)s, now() - interval '60 days' * g / %(n)s
  FROM generate_series(1, %(n)s) AS g
"""


@pytest.mark.parametrize("name", ["reasons_by_model", "reasons_by_template", "reasons_over_time"])
def test_each_query_reads_the_partial_index_of_outputs_with_reasons(pool, analyst, name):
    """Among thousands of rated outputs, the few with reasons are read through their index, as
    the admin and as the analyst."""
    with pool.connection() as conn:
        conn.execute(SEED_MANY, {"user_id": analyst.id, "n": 6000})
        conn.execute("ANALYZE llm_outputs")
        for user_id in (None, analyst.id):
            params = {
                "user_id": user_id,
                "model": None,
                "template": None,
                "created_after": datetime.now(UTC) - timedelta(days=30),
                "created_before": None,
                "limit": 10,
                "bucket": "day",
            }
            plan = conn.execute("EXPLAIN " + queries[name], params).fetchall()
            text = "\n".join(r["QUERY PLAN"] for r in plan)
            assert "llm_outputs_reasons_idx" in text, text
