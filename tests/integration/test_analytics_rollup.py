"""The analytics rollup (migration 0006): aggregates answered from rolled-up periods plus the
outputs of the rest of the range equal the same aggregates over the outputs alone (counts, sums
and rates exactly; latency percentiles within 9.05 %), for several filters and ranges cutting
days in half. Outputs changed after their period was rolled up, periods never rolled up and
periods rolled up while a change was in flight are still answered exactly."""

from __future__ import annotations

import contextlib
import itertools
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from psycopg.rows import dict_row

from db import analytics, evidence, outputs
from db.analytics import OutputFilter
from db.queries import queries
from tasks.config import QUEUE_PRIORITY
from tests.support.clock import clear_of

# 2^(1/8) - 1: the width of a latency histogram bucket relative to its values
PERCENTILE_ERROR = 2 ** (1 / 8) - 1
REFRESH_LOCK = 7305112002
MODELS = ["openai/gpt-a", "openai/gpt-b", "offline/echo"]
T_PLAIN = "Explain {{concept}} to a beginner"
T_OTHER = "Summarise {{text}} in one line"
T_LIBRARY = "Translate {{text}} into French"
DAY = timedelta(days=1)


@pytest.fixture
def now() -> datetime:
    """The time this test started (never the time the module was imported)."""
    return datetime.now(UTC)


@pytest.fixture
def today(now) -> datetime:
    """The start of now's UTC day."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _db_clock(conn: psycopg.Connection) -> datetime:
    """The database's clock now: the clock its now() and its rollup's settling time follow."""
    return conn.execute("SELECT clock_timestamp() AS at").fetchone()["at"]


def _add_output(
    conn: psycopg.Connection,
    user_id: int,
    *,
    model: str,
    template: str,
    created_at: datetime | None,
    status: str = "completed",
    feedback: str = "none",
    latency_ms: int | None = None,
    cost: Decimal | None = None,
    template_version_id: int | None = None,
) -> int:
    output_id = outputs.insert_output(
        conn,
        outputs.NewOutput(
            user_id=user_id,
            template=template,
            model=model,
            context={"concept": "x", "text": "y"},
            format="text",
            queue="default",
            priority=QUEUE_PRIORITY["default"],
            template_version_id=template_version_id,
        ),
    )
    if status != "pending":
        outputs.set_output_state(
            conn,
            output_id,
            status=status,
            raw_response="an answer" if status == "completed" else None,
            feedback=feedback,
            error_message="it failed" if status == "failed" else None,
        )
    analytics.set_output_figures(
        conn, output_id, latency_ms=latency_ms, cost=cost, created_at=created_at
    )
    return output_id


@pytest.fixture
def history(pool, analyst, other_analyst, now, today):
    """About 250 outputs of two users, three models and three templates (one a library
    version) spread over the last eight days and today, in every status, with feedback, costs
    (some missing) and latencies from 3 ms to 40 s. Returns the library version's id."""
    rng = random.Random(2006)
    start = today - 8 * DAY
    with pool.connection() as conn, conn.transaction():
        version = evidence.add_template_version(
            conn, name="translate", body=T_LIBRARY, note="", user_id=analyst.id
        )
        for _ in range(250):
            template = rng.choice([T_PLAIN, T_PLAIN, T_OTHER, T_LIBRARY])
            status = rng.choices(["completed", "failed", "pending", "processing"], [8, 2, 1, 1])[0]
            completed = status == "completed"
            _add_output(
                conn,
                rng.choice([analyst.id, analyst.id, other_analyst.id]),
                model=rng.choice(MODELS),
                template=template,
                template_version_id=version.id if template == T_LIBRARY else None,
                created_at=start + (now - start) * rng.random(),
                status=status,
                feedback=rng.choice(["none", "thumbs_up", "thumbs_down"]) if completed else "none",
                latency_ms=int(math.exp(rng.uniform(1, 10.6))) if status != "pending" else None,
                cost=None if rng.random() < 0.2 else Decimal(rng.randint(1, 5000)) / 10**6,
            )
    return version.id


def _raw(conn: psycopg.Connection, name: str, flt: OutputFilter, **extra) -> list[dict]:
    return conn.execute(queries[name], {**flt.model_dump(), **extra}).fetchall()


def _assert_same_as_raw(conn: psycopg.Connection, flt: OutputFilter) -> None:
    """The four aggregates of the Analytics page against the same SQL over the outputs only."""
    by_model = [r.model_dump() for r in analytics.by_model(conn, flt)]
    exact = _raw(conn, "analytics_by_model", flt)
    assert [r["model"] for r in by_model] == [r["model"] for r in exact]
    for got, want in zip(by_model, exact, strict=True):
        for key in ("latency_p50_ms", "latency_p95_ms"):
            if want[key] is None:
                assert got.pop(key) is None
            else:
                assert got.pop(key) == pytest.approx(want.pop(key), rel=PERCENTILE_ERROR)
        want.pop("latency_p50_ms", None)
        want.pop("latency_p95_ms", None)
        assert got == want
    feedback = [r.model_dump() for r in analytics.feedback_over_time(conn, flt, "day")]
    assert feedback == _raw(conn, "analytics_feedback_over_time", flt, bucket="day")
    volume = [r.model_dump() for r in analytics.volume_over_time(conn, flt, "day")]
    assert volume == _raw(conn, "analytics_volume_over_time", flt, bucket="day")
    templates = [r.model_dump() for r in analytics.by_template(conn, flt, 10)]
    assert templates == _raw(conn, "analytics_by_template", flt, limit=10)


def _filters(users: list[int], now: datetime, today: datetime) -> list[OutputFilter]:
    half = timedelta(hours=12, minutes=30)
    return [
        OutputFilter(),
        OutputFilter(created_after=today - 6 * DAY + half, created_before=today - DAY + half),
        OutputFilter(user_id=users[0], model=MODELS[0], created_after=today - 7 * DAY),
        OutputFilter(user_id=users[1], template=T_LIBRARY, created_before=now - timedelta(hours=2)),
        OutputFilter(
            user_id=users[0],
            model=MODELS[1],
            template=T_PLAIN,
            created_after=today - 5 * DAY - half,
            created_before=now + DAY,
        ),
        OutputFilter(model=MODELS[2], created_after=today - 29 * DAY, created_before=today + DAY),
    ]


def _periods(conn: psycopg.Connection) -> list[tuple[datetime, datetime]]:
    rows = conn.execute("SELECT period_start, period_end FROM analytics_periods ORDER BY 1")
    return [(r["period_start"], r["period_end"]) for r in rows]


@contextlib.contextmanager
def _refresh_held_elsewhere(database_url: str) -> Iterator[None]:
    """As if another refresh were running: every refresh meanwhile does nothing."""
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (REFRESH_LOCK,))
        yield
        holder.execute("SELECT pg_advisory_unlock(%s)", (REFRESH_LOCK,))


def _clean_periods(conn: psycopg.Connection) -> list[datetime]:
    rows = conn.execute("SELECT period_start FROM analytics_rolled_periods(NULL, NULL)")
    return [r["period_start"] for r in rows]


def _noted_hours(conn: psycopg.Connection) -> list[datetime]:
    return [r["hour"] for r in conn.execute("SELECT DISTINCT hour FROM analytics_changes")]


def test_rolled_up_aggregates_equal_those_over_the_outputs(
    pool, history, analyst, other_analyst, now, today
):
    with pool.connection() as conn:
        rolled = analytics.refresh_rollup(conn)
        periods = _periods(conn)
        assert rolled == len(periods) >= 8
        # the settled days, then whole hours of the day still open
        assert all(end - start in (DAY, timedelta(hours=1)) for start, end in periods)
        # settled: ended 10 minutes before the refresh, by the database's clock
        assert periods[-1][1] <= _db_clock(conn) - timedelta(minutes=10)
        assert _noted_hours(conn) == []
        for flt in _filters([analyst.id, other_analyst.id], now, today):
            _assert_same_as_raw(conn, flt)


def test_whole_settled_periods_are_read_from_the_rollup_and_partial_days_from_outputs(
    pool, history, today
):
    day = today - 3 * DAY
    with pool.connection() as conn:
        analytics.refresh_rollup(conn)
        before = analytics.volume_over_time(conn, OutputFilter(), "day")
        # Only the rollup knows these 1,000 outputs: whoever counts them read the rollup.
        conn.execute(
            "UPDATE analytics_rollup SET completed = completed + 1000 "
            " WHERE period_start = %s AND user_id = 0 AND model = '' AND template_md5 = ''",
            (day,),
        )
        after = analytics.volume_over_time(conn, OutputFilter(), "day")
        cut = OutputFilter(created_after=day + timedelta(hours=1), created_before=today)
        partial = [p.model_dump() for p in analytics.volume_over_time(conn, cut, "day")]
        exact = _raw(conn, "analytics_volume_over_time", cut, bucket="day")

    def completed_on(points) -> int:
        return sum(p.outputs for p in points if p.bucket == day and p.status == "completed")

    assert completed_on(before) > 0
    assert completed_on(after) == completed_on(before) + 1000
    # a day cut by the range is read from the outputs, whatever the rollup says
    assert partial == exact


def test_feedback_changed_on_an_old_output_is_counted_before_and_after_refresh(
    pool, database_url, history, analyst, today
):
    day = today - 4 * DAY
    flt = OutputFilter(created_after=today - 7 * DAY)
    with pool.connection() as conn:
        analytics.refresh_rollup(conn)
        old = conn.execute(
            "SELECT id, feedback, created_at FROM llm_outputs"
            " WHERE status = 'completed' AND created_at >= %s AND created_at < %s"
            " ORDER BY id LIMIT 1",
            (day, day + DAY),
        ).fetchone()
        flipped = "thumbs_down" if old["feedback"] == "thumbs_up" else "thumbs_up"
        ups_before = sum(r.thumbs_up for r in analytics.by_model(conn, flt))
        outputs.set_feedback(conn, old["id"], user_id=analyst.id, feedback=flipped)
        conn.commit()
        hour = old["created_at"].replace(minute=0, second=0, microsecond=0)
        assert _noted_hours(conn) == [hour]
        assert day not in _clean_periods(conn)
        with _refresh_held_elsewhere(database_url):
            # stale: the day is read from the outputs until it is rolled up again
            _assert_same_as_raw(conn, flt)
            ups_after = sum(r.thumbs_up for r in analytics.by_model(conn, flt))
            assert ups_after == ups_before + (1 if flipped == "thumbs_up" else -1)
            conn.commit()

        assert analytics.refresh_rollup(conn) >= 1
        assert _noted_hours(conn) == []
        assert day in _clean_periods(conn)
        rolled = conn.execute(
            "SELECT thumbs_up FROM analytics_rollup WHERE period_start = %s"
            " AND user_id = 0 AND model = '' AND template_md5 = ''",
            (day,),
        ).fetchone()["thumbs_up"]
        exact = conn.execute(
            "SELECT count(*) AS n FROM llm_outputs WHERE feedback = 'thumbs_up'"
            " AND created_at >= %s AND created_at < %s",
            (day, day + DAY),
        ).fetchone()["n"]
        assert rolled == exact
        _assert_same_as_raw(conn, flt)


def test_periods_never_rolled_up_are_read_from_the_outputs(
    pool, database_url, history, analyst, other_analyst, now, today
):
    # Another refresh holds the lock: the aggregates' own refresh steps aside.
    with _refresh_held_elsewhere(database_url), pool.connection() as conn:
        assert analytics.refresh_rollup(conn) == 0
        for flt in _filters([analyst.id, other_analyst.id], now, today)[:3]:
            _assert_same_as_raw(conn, flt)
        assert _periods(conn) == []
    with pool.connection() as conn:
        # some periods rolled up, the older ones not
        assert analytics.refresh_rollup(conn, max_periods=3) == 3
        assert len(_periods(conn)) == 3
        for flt in _filters([analyst.id, other_analyst.id], now, today):
            _assert_same_as_raw(conn, flt)


def test_an_aggregate_rolls_up_its_own_range_when_behind(pool, history, now, today):
    flt = OutputFilter(created_after=today - 5 * DAY, created_before=today + DAY)
    oldest = (today - 5 * DAY, today - 4 * DAY)
    with pool.connection() as conn:
        assert _periods(conn) == []
        analytics.by_model(conn, flt)
        first = _periods(conn)
        # at most LAZY_PERIODS per call, newest first, only inside the range
        assert 0 < len(first) <= analytics.LAZY_PERIODS
        assert all(start >= flt.created_after for start, _ in first)
        assert max(end for _, end in first) > now - timedelta(hours=2)
        calls = 1
        while oldest not in _periods(conn):
            assert calls < 3
            analytics.by_model(conn, flt)
            calls += 1
        assert _periods(conn)[0] == oldest


def test_a_change_committed_during_a_refresh_stays_noted(
    pool, database_url, history, analyst, today
):
    day = today - 2 * DAY
    with pool.connection() as conn:
        analytics.refresh_rollup(conn)
        target = conn.execute(
            "SELECT id FROM llm_outputs WHERE status = 'completed' AND feedback <> 'thumbs_up'"
            " AND created_at >= %s AND created_at < %s ORDER BY id LIMIT 1",
            (day, day + DAY),
        ).fetchone()["id"]
    with psycopg.connect(database_url, row_factory=dict_row) as writer:
        outputs.set_feedback(writer, target, user_id=analyst.id, feedback="thumbs_up")
        # not committed yet while the day is rolled up again
        with pool.connection() as conn:
            conn.execute("INSERT INTO analytics_changes (hour) VALUES (%s)", (day,))
            conn.commit()
            assert analytics.refresh_rollup(conn) >= 1
        writer.commit()
    with pool.connection() as conn:
        assert _noted_hours(conn) != []
        _assert_same_as_raw(conn, OutputFilter(created_after=today - 7 * DAY))


def test_changes_to_outputs_of_the_current_hour_note_nothing(pool, analyst):
    # the fresh output and its change must fall in one hour
    now = clear_of("hour")
    with pool.connection() as conn:
        # created now (the database's clock), as the worker's outputs are
        fresh = _add_output(conn, analyst.id, model=MODELS[0], template=T_PLAIN, created_at=None)
        outputs.set_feedback(conn, fresh, user_id=analyst.id, feedback="thumbs_up")
        assert _noted_hours(conn) == []
        old = _add_output(
            conn, analyst.id, model=MODELS[0], template=T_PLAIN, created_at=now - 2 * DAY
        )
        assert _noted_hours(conn) == [(now - 2 * DAY).replace(minute=0, second=0, microsecond=0)]
        conn.execute("TRUNCATE analytics_changes")
        conn.execute("DELETE FROM llm_outputs WHERE id = %s", (old,))
        assert len(_noted_hours(conn)) == 1


def test_deleting_a_user_is_reflected(pool, history, analyst, other_analyst, today):
    flt = OutputFilter(created_after=today - 7 * DAY)
    with pool.connection() as conn:
        analytics.refresh_rollup(conn)
        total = sum(r.outputs for r in analytics.by_model(conn, flt))
        gone = conn.execute(
            "SELECT count(*) AS n FROM llm_outputs WHERE user_id = %s AND created_at >= %s",
            (other_analyst.id, flt.created_after),
        ).fetchone()["n"]
        conn.execute("DELETE FROM users WHERE id = %s", (other_analyst.id,))
        conn.commit()
        assert gone > 0
        assert sum(r.outputs for r in analytics.by_model(conn, flt)) == total - gone
        _assert_same_as_raw(conn, flt)


def test_periods_are_utc_days_and_hours_whatever_the_session_time_zone(pool, analyst, now):
    # 400 days back cross daylight saving changes in New York
    with pool.connection() as conn:
        _add_output(conn, analyst.id, model=MODELS[0], template=T_PLAIN, created_at=now - 400 * DAY)
        conn.execute("SET TimeZone = 'America/New_York'")
        assert analytics.refresh_rollup(conn) >= 400
        conn.execute("SET TimeZone = 'UTC'")
        periods = _periods(conn)
    days = [(start, end) for start, end in periods if end - start == DAY]
    hours = [(start, end) for start, end in periods if end - start == timedelta(hours=1)]
    assert len(days) + len(hours) == len(periods)
    assert len(days) >= 399
    assert all(start.astimezone(UTC).hour == 0 for start, _ in days)
    assert all(start.astimezone(UTC).minute == 0 for start, _ in hours)
    # contiguous, from the first output's day on
    assert all(a[1] == b[0] for a, b in itertools.pairwise(periods))


def test_truncating_outputs_empties_the_rollup(pool, history):
    with pool.connection() as conn:
        analytics.refresh_rollup(conn)
        assert _periods(conn)
        conn.execute("TRUNCATE llm_outputs CASCADE")
        assert _periods(conn) == []
        assert conn.execute("SELECT count(*) AS n FROM analytics_rollup").fetchone()["n"] == 0


@pytest.mark.parametrize("spread", [(1, 15), (20, 90_000), (300, 8_300)])
def test_latency_percentiles_are_within_the_bound(pool, analyst, today, spread):
    low, high = spread
    rng = random.Random(low)
    with pool.connection() as conn:
        for i in range(400):
            _add_output(
                conn,
                analyst.id,
                model=MODELS[0],
                template=T_PLAIN,
                created_at=today - (2 + i % 4) * DAY + timedelta(hours=i % 24),
                latency_ms=int(low * (high / low) ** rng.random()),
            )
        analytics.refresh_rollup(conn)
        flt = OutputFilter(created_after=today - 10 * DAY)
        (got,) = analytics.by_model(conn, flt)
        (exact,) = _raw(conn, "analytics_by_model", flt)
    for key in ("latency_p50_ms", "latency_p95_ms"):
        error = abs(getattr(got, key) - exact[key]) / exact[key]
        assert error <= PERCENTILE_ERROR
        if high <= 16:  # one bucket per millisecond: exact
            assert getattr(got, key) == pytest.approx(exact[key])


def test_latency_percentiles_are_exact_when_no_rolled_up_period_has_them(pool, analyst):
    with pool.connection() as conn:
        for latency in (100, 200, 300, 400, 555):
            _add_output(
                conn,
                analyst.id,
                model=MODELS[0],
                template=T_PLAIN,
                created_at=None,
                latency_ms=latency,
            )
        # the range around the rows' own time (the database's now()), whenever the test runs
        now = _db_clock(conn)
        flt = OutputFilter(created_after=now - 29 * DAY, created_before=now + DAY)
        (got,) = analytics.by_model(conn, flt)
    # percentile_cont over 100, 200, 300, 400, 555: p50 300, p95 400 + 0.8 * 155
    assert got.latency_p50_ms == 300
    assert got.latency_p95_ms == pytest.approx(524)


def test_latency_buckets_hold_their_milliseconds(pool):
    with pool.connection() as conn:
        row = conn.execute(
            """
            WITH b AS (SELECT g AS bucket, ceil(analytics_latency_floor(g))::bigint AS first_ms
                         FROM generate_series(16, 231) AS g)
            SELECT count(*) FILTER (WHERE analytics_latency_bucket(first_ms::int) <> bucket)
                       AS first_elsewhere,
                   count(*) FILTER (WHERE analytics_latency_bucket(first_ms::int - 1) <> bucket - 1)
                       AS previous_elsewhere,
                   max(analytics_latency_floor(bucket + 1) / analytics_latency_floor(bucket))
                       AS widest
              FROM b WHERE first_ms < 2147483647
            """
        ).fetchone()
        small = conn.execute(
            "SELECT bool_and(analytics_latency_bucket(ms) = ms) AS exact"
            "  FROM generate_series(0, 15) AS ms"
        ).fetchone()
    assert row["first_elsewhere"] == 0
    assert row["previous_elsewhere"] == 0
    assert row["widest"] - 1 <= PERCENTILE_ERROR
    assert small["exact"]


async def test_the_worker_refreshes_the_rollup(pool, history, run_worker):
    from tasks.worker.maintenance import refresh_analytics_task

    job_id = await refresh_analytics_task.defer_async(timestamp=0)

    def done() -> bool:
        with pool.connection() as conn:
            row = conn.execute(
                "SELECT status FROM procrastinate_jobs WHERE id = %s", (job_id,)
            ).fetchone()
        return row["status"] in ("succeeded", "failed")

    await run_worker(until=done, timeout=60)
    with pool.connection() as conn:
        status = conn.execute(
            "SELECT status FROM procrastinate_jobs WHERE id = %s", (job_id,)
        ).fetchone()["status"]
        assert status == "succeeded"
        assert len(_periods(conn)) >= 8
