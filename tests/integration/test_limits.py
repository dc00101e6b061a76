"""Provider limits: requests, tokens and calls in flight per model, held in PostgreSQL by every
worker together; waiting for a limit is not failing; a 429 pauses the model for every worker.

Minutes are shortened (LLMJOBS_LIMIT_MINUTE) so a limit's minute passes within a test; the
scripted provider enforces the same limits over the same window and counts what reached it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tasks import batches, limits
from tasks import outputs as jobs
from tasks.config import LLM_TASK
from tasks.errors import Forbidden, InvalidInput
from tests.support.provider import RateLimit, ScriptedProvider, Step, ok

PROCRASTINATE = Path(sys.executable).parent / "procrastinate"


def _submit(
    pool, user, model: str, n: int, queue: str = "default", word: str = "x", pad: int = 0
) -> list[int]:
    return [
        jobs.submit(
            pool,
            user=user,
            template="Explain {{c}}",
            context={"c": f"{word}{i}" + "." * pad},
            model=model,
            queue=queue,
        ).output_id
        for i in range(n)
    ]


def _statuses(pool, ids: list[int]) -> dict[int, tuple[str, int]]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT id, status, attempts FROM llm_outputs WHERE id = ANY(%s)", (ids,)
        ).fetchall()
    return {r["id"]: (r["status"], r["attempts"]) for r in rows}


def _fetch(pool, count: int, worker_id: int | None = None, minute: float = 60) -> list[dict]:
    with pool.connection() as conn:
        return conn.execute(
            "SELECT (j.job).id, (j.job).args, j.limited"
            "  FROM llmjobs_fetch_jobs(NULL, %s, %s, %s, %s, 30) AS j",
            (worker_id, count, LLM_TASK, minute),
        ).fetchall()


def _taken_outputs(rows: list[dict]) -> list[int]:
    return [r["args"]["output_id"] for r in rows]


# Limits: where they come from, what they accept.


def test_a_model_takes_its_exact_limit_else_its_longest_prefix(pool, admin):
    limits.set_limit(pool, admin, "openai/", rpm=50)
    limits.set_limit(pool, admin, "openai/gpt-4o", tpm=30000)
    limits.set_limit(pool, admin, "openai/gpt", rpm=7)  # no `/` at its end: a name, no prefix
    with pool.connection() as conn:

        def pattern(model: str) -> str | None:
            return conn.execute("SELECT pattern FROM llmjobs_model_limit(%s)", (model,)).fetchone()[
                "pattern"
            ]

        assert pattern("openai/gpt-4o") == "openai/gpt-4o"
        assert pattern("openai/gpt-4o-mini") == "openai/"
        assert pattern("openai/gpt") == "openai/gpt"
        assert pattern("anthropic/claude") is None


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"pattern": "openai/x"}, "rpm", "at least one"),
        ({"pattern": "openai/x", "rpm": 0}, "rpm", "from 1 to"),
        ({"pattern": "openai/x", "tpm": -5}, "tpm", "from 1 to"),
        ({"pattern": "openai/x", "concurrent": 1.5}, "concurrent", "whole number"),
        ({"pattern": "openai/x", "rpm": "12"}, "rpm", "whole number"),
        ({"pattern": "openai/x", "rpm": True}, "rpm", "whole number"),
        ({"pattern": "openai/x", "rpm": 10**12}, "rpm", "from 1 to"),
        ({"pattern": "open ai", "rpm": 1}, "model", "model name"),
        ({"pattern": "x" * 201, "rpm": 1}, "model", "model name"),
        ({"pattern": "", "rpm": 1}, "model", "empty"),
        ({"pattern": None, "rpm": 1}, "model", "prefix"),
    ],
)
def test_bad_limits_are_refused_naming_the_field(pool, admin, values, field, words):
    pattern = values.pop("pattern")
    with pytest.raises(InvalidInput) as refused:
        limits.set_limit(pool, admin, pattern, **values)
    assert refused.value.field == field
    assert words in refused.value.message
    assert limits.list_limits(pool) == []


def test_only_admins_set_or_clear_limits(pool, analyst, admin):
    with pytest.raises(Forbidden):
        limits.set_limit(pool, analyst, "openai/", rpm=5)
    limits.set_limit(pool, admin, "openai/", rpm=5)
    with pytest.raises(Forbidden):
        limits.clear_limit(pool, analyst, "openai/")
    assert [(lim.pattern, lim.rpm, lim.source) for lim in limits.list_limits(pool)] == [
        ("openai/", 5, "admin")
    ]
    assert limits.clear_limit(pool, admin, "openai/") is True
    assert limits.clear_limit(pool, admin, "openai/") is False


async def test_the_environment_limits_are_written_by_workers_but_admins_win(
    pool, admin, opened_app, run_worker, settings_env
):
    limits.set_limit(pool, admin, "anthropic/", rpm=9)
    settings_env(MODEL_LIMITS="openai/gpt-4o=rpm:500,tpm:30000,concurrent:20;anthropic/=rpm:50")
    await run_worker(until=lambda: len(limits.list_limits(pool)) == 2, timeout=60)
    found = {lim.pattern: lim for lim in limits.list_limits(pool)}
    assert (found["openai/gpt-4o"].rpm, found["openai/gpt-4o"].tpm) == (500, 30000)
    assert (found["openai/gpt-4o"].max_concurrent, found["openai/gpt-4o"].source) == (20, "env")
    assert (found["anthropic/"].rpm, found["anthropic/"].source) == (9, "admin")


# The buckets, statement by statement.


def test_requests_per_minute_allow_a_burst_then_pace(pool, analyst, admin, provider):
    limits.set_limit(pool, admin, "openai/paced", rpm=60)  # a burst of 2, then about 1 a second
    ids = _submit(pool, analyst, "openai/paced", 5)
    taken = _fetch(pool, 5)
    assert _taken_outputs(taken) == ids[:2]
    assert {r["limited"] for r in taken} == {"openai/paced"}
    # the others wait, untouched: no attempt spent, no worker slot held
    assert _statuses(pool, ids[2:]) == {i: ("pending", 0) for i in ids[2:]}
    with pool.connection() as conn:
        waiting = conn.execute(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'todo' AND attempts = 0"
        ).fetchone()["n"]
    assert waiting == 3
    pace = limits.pace(pool, "openai/paced")
    assert pace.waiting_for == "waiting for the openai/paced limit (requests per minute)"
    assert pace.calls_per_minute == 60


def test_a_limited_model_does_not_hold_up_other_models(pool, analyst, admin, provider):
    limits.set_limit(pool, admin, "openai/slow", rpm=1)
    slow = _submit(pool, analyst, "openai/slow", 3, queue="high")
    fast = _submit(pool, analyst, "openai/fast", 3, queue="low")
    taken = _taken_outputs(_fetch(pool, 10))
    assert taken == [slow[0], *fast]


def test_priorities_hold_within_a_model(pool, analyst, admin, provider):
    limits.set_limit(pool, admin, "openai/", rpm=1)
    low = _submit(pool, analyst, "openai/one", 2, queue="low")
    high = _submit(pool, analyst, "openai/one", 1, queue="high")
    assert _taken_outputs(_fetch(pool, 3)) == [high[0]]
    assert _statuses(pool, low) == {i: ("pending", 0) for i in low}


def test_a_limit_change_applies_at_the_next_fetch(pool, analyst, admin, provider):
    limits.set_limit(pool, admin, "openai/m", rpm=1)
    ids = _submit(pool, analyst, "openai/m", 4)
    assert len(_fetch(pool, 4)) == 1
    assert _fetch(pool, 4) == []
    limits.set_limit(pool, admin, "openai/m", rpm=600)  # a burst of 20
    assert _taken_outputs(_fetch(pool, 4)) == ids[1:]
    limits.clear_limit(pool, admin, "openai/m")
    _submit(pool, analyst, "openai/m", 3)
    assert len(_fetch(pool, 3)) == 3


def _worker_row(conn: psycopg.Connection, seconds_ago: float) -> int:
    return conn.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat)"
        " VALUES (now() - make_interval(secs => %s)) RETURNING id",
        (seconds_ago,),
    ).fetchone()["id"]


def test_calls_in_flight_are_capped_and_a_dead_workers_calls_stop_counting(
    pool, analyst, admin, provider
):
    limits.set_limit(pool, admin, "openai/c", concurrent=2)
    ids = _submit(pool, analyst, "openai/c", 4)
    with pool.connection() as conn:
        alive = _worker_row(conn, 0)
    assert _taken_outputs(_fetch(pool, 4, worker_id=alive)) == ids[:2]
    assert _fetch(pool, 4, worker_id=alive) == []
    assert limits.pace(pool, "openai/c").reason == "concurrent"
    # the worker is killed: its heartbeat goes stale (30 s here) and its calls stop counting
    with pool.connection() as conn:
        conn.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '31 seconds'"
            " WHERE id = %s",
            (alive,),
        )
        other = _worker_row(conn, 0)
    assert _taken_outputs(_fetch(pool, 4, worker_id=other)) == ids[2:]


def test_tokens_per_minute_take_the_estimate_and_the_answer_corrects_it(
    pool, analyst, admin, provider
):
    limits.set_limit(pool, admin, "openai/t", tpm=30_000)  # a burst of 1,000 tokens
    ids = _submit(pool, analyst, "openai/t", 6)
    taken = _fetch(pool, 6)
    with pool.connection() as conn:
        estimates = [
            r["tokens_estimated"]
            for r in conn.execute(
                "SELECT tokens_estimated FROM llmjobs_model_calls ORDER BY job_id"
            ).fetchall()
        ]
        # each call: the prompt's text in tokens and 256 for an answer not seen yet
        assert all(260 < e < 300 for e in estimates), estimates
        assert len(taken) == len(estimates) == 1000 // estimates[0]
        # the answers were short: what the estimates overstated comes back
        conn.execute(
            "SELECT llmjobs_release_capacity(job_id, 20, 10, 1, 60) FROM llmjobs_model_calls"
        )
        typical = conn.execute(
            "SELECT typical_completion FROM llmjobs_model_buckets WHERE model = 'openai/t'"
        ).fetchone()["typical_completion"]
    assert typical < 256
    assert len(_fetch(pool, 6)) == len(ids) - len(taken)


def test_a_pause_after_a_429_stops_every_fetch_of_the_model_only(pool, analyst, provider):
    paused = _submit(pool, analyst, "openai/p", 2)
    other = _submit(pool, analyst, "openai/q", 1)
    with pool.connection() as conn:
        conn.execute("SELECT llmjobs_pause_model('openai/p', 30)")
    assert _taken_outputs(_fetch(pool, 3)) == other
    pace = limits.pace(pool, "openai/p")
    assert pace.reason == "paused"
    assert pace.waiting_for == (
        "waiting for the openai/p limit (paused after the provider answered 429)"
    )
    with pool.connection() as conn:
        conn.execute("UPDATE llmjobs_model_buckets SET paused_until = now()")
    assert _taken_outputs(_fetch(pool, 3)) == paused


def test_a_batch_is_paced_by_its_models_rate_limit(pool, analyst, admin):
    made = batches.submit_batch(
        pool,
        user=analyst,
        template="Hi {{ n }}",
        model="offline/echo",
        rows=[{"n": str(i)} for i in range(5)],
    )
    batch = batches.get_batch(pool, made.id, analyst)
    assert limits.batch_pace(pool, batch) is None  # no limit
    limits.set_limit(pool, admin, "offline/", concurrent=2)
    assert limits.batch_pace(pool, batch) is None  # no rate cap: no pace to tell
    limits.set_limit(pool, admin, "offline/", rpm=60)
    with pool.connection() as conn:  # one row is running: four are still to start
        conn.execute(
            "UPDATE llm_outputs SET status = 'processing'"
            " WHERE id = (SELECT min(id) FROM llm_outputs WHERE batch_id = %s)",
            (made.id,),
        )
    now = datetime(2030, 1, 2, 14, 0, tzinfo=UTC)
    paced = limits.batch_pace(pool, batch, now)
    assert paced is not None
    assert (paced.pace.pattern, paced.pace.calls_per_minute, paced.waiting) == ("offline/", 60, 4)
    assert paced.finish == now + timedelta(seconds=4)
    # the waiting rows cancelled: one still runs, none waits to start, nothing to pace
    batches.cancel_batch(pool, made.id, analyst)
    running = batches.get_batch(pool, made.id, analyst)
    assert running.unfinished == 1
    assert limits.batch_pace(pool, running, now) is None


# Workers.


async def test_waiting_for_a_limit_is_not_failing(
    pool, analyst, admin, provider, run_worker, settings_env
):
    settings_env(LIMIT_MINUTE="2", POLL_INTERVAL="0.05")
    limits.set_limit(pool, admin, "openai/w", rpm=2)  # one call a second or so
    ids = _submit(pool, analyst, "openai/w", 4)
    await run_worker(timeout=30, fetch_job_polling_interval=0.05)
    assert _statuses(pool, ids) == {i: ("completed", 1) for i in ids}
    assert [outcome for _, outcome in provider.outcomes] == [200] * 4
    with pool.connection() as conn:
        retried = conn.execute(
            "SELECT count(*) AS n FROM procrastinate_events WHERE type = 'deferred_for_retry'"
        ).fetchone()["n"]
    assert retried == 0
    # the limit's promise where it is kept, in the database: at most 2 calls started in any
    # window of the (2-second) minute and the second the window allows for the way to the provider
    with pool.connection() as conn:
        most = conn.execute(
            "SELECT max((SELECT count(*) FROM llmjobs_model_calls AS later"
            "             WHERE later.model = c.model AND later.started_at >= c.started_at"
            "               AND later.started_at < c.started_at + interval '3 seconds')) AS n"
            "  FROM llmjobs_model_calls AS c WHERE c.model = 'openai/w'"
        ).fetchone()["n"]
    assert most == 2


async def test_a_running_worker_goes_past_a_model_at_its_limit(
    pool, analyst, admin, provider, run_worker, settings_env
):
    settings_env(POLL_INTERVAL="0.05")
    limits.set_limit(pool, admin, "openai/busy", rpm=1)
    busy = _submit(pool, analyst, "openai/busy", 3, queue="high")
    free = _submit(pool, analyst, "openai/free", 3, queue="low")

    def free_done() -> bool:
        return {s for s, _ in _statuses(pool, free).values()} == {"completed"}

    await run_worker(until=free_done, timeout=20, fetch_job_polling_interval=0.05)
    found = _statuses(pool, busy)
    assert sorted(found.values()) == [("completed", 1), ("pending", 0), ("pending", 0)]
    waiting = [i for i, (status, _) in found.items() if status == "pending"]
    with pool.connection() as conn:
        jobs_left = conn.execute(
            "SELECT status::text AS status, attempts FROM procrastinate_jobs"
            " WHERE (args->>'output_id')::bigint = ANY(%s)",
            (waiting,),
        ).fetchall()
    assert jobs_left == [{"status": "todo", "attempts": 0}] * 2


async def test_a_limit_raised_reaches_a_running_worker(
    pool, analyst, admin, provider, run_worker, settings_env
):
    settings_env(POLL_INTERVAL="0.05")
    limits.set_limit(pool, admin, "openai/r", rpm=1)
    ids = _submit(pool, analyst, "openai/r", 4)
    raised: list[bool] = []

    def raise_when_one_done() -> bool:
        done = [s for s, _ in _statuses(pool, ids).values() if s == "completed"]
        if len(done) == 1 and not raised:
            time.sleep(0.3)  # the worker fetches a few times meanwhile and takes nothing
            assert len(provider.requests) == 1
            limits.set_limit(pool, admin, "openai/r", rpm=6000)
            raised.append(True)
        return len(done) == len(ids)

    await run_worker(until=raise_when_one_done, timeout=20, fetch_job_polling_interval=0.05)
    assert raised and len(provider.requests) == 4


async def test_a_429_pauses_the_model_for_every_job(
    pool, analyst, provider, run_worker, settings_env
):
    settings_env(POLL_INTERVAL="0.05", RETRY_SCALE="0.01")
    provider.push(Step(status=429, headers={"retry-after": "1.5"}, error_body={"error": {}}))
    ids = _submit(pool, analyst, "openai/h", 1)
    await run_worker(until=lambda: len(provider.requests) == 1, timeout=20)
    more = _submit(pool, analyst, "openai/h", 3, word="y")
    await run_worker(timeout=30, fetch_job_polling_interval=0.05)
    assert {s for s, _ in _statuses(pool, ids + more).values()} == {"completed"}
    first, *rest = provider.arrivals
    assert first.status == 429
    assert min(a.at for a in rest) - first.at >= 1.4
    use = {u.model: u for u in limits.use(pool, _admin(pool))}
    assert use["openai/h"].rate_limited_last_hour == 1


def _admin(pool) -> Any:
    from tasks import accounts

    return accounts.ensure_user(pool, "limits-admin", admin=True)


def _spawn_worker(**env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(PROCRASTINATE), "--app=tasks.app", "worker"],
        env={
            **os.environ,
            "LLMJOBS_HEARTBEAT_INTERVAL": "0.5",
            "LLMJOBS_POLL_INTERVAL": "0.05",
            "LLMJOBS_LOG_LEVEL": "WARNING",
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def limited_provider(monkeypatch, database_url) -> Any:
    from tests.conftest import publish_catalog

    server = ScriptedProvider(
        default=ok("An answer of a hundred tokens. " * 13),
        limits={
            "rpm-model": RateLimit(window=3, rpm=6),
            "tpm-model": RateLimit(window=3, tpm=1000),
        },
    ).start()
    monkeypatch.setenv("OPENAI_API_BASE", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key-0123456789")
    publish_catalog(database_url)
    yield server
    server.stop()


def test_two_workers_keep_together_to_the_limits_the_provider_enforces(
    pool, analyst, admin, limited_provider
):
    limits.set_limit(pool, admin, "openai/rpm-model", rpm=6)
    limits.set_limit(pool, admin, "openai/tpm-model", tpm=1000)
    # calls of about 200 tokens: a hundred in the prompt, a hundred in the answer
    ids = _submit(pool, analyst, "openai/rpm-model", 12) + _submit(
        pool, analyst, "openai/tpm-model", 12, pad=400
    )
    workers = [_spawn_worker(LLMJOBS_LIMIT_MINUTE="3") for _ in range(2)]
    try:
        done = _wait(
            lambda: {s for s, _ in _statuses(pool, ids).values()} == {"completed"}, timeout=60
        )
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(30)
    assert done, _statuses(pool, ids)
    start = limited_provider.arrivals[0].at
    seen = [
        (round(a.at - start, 3), a.model, a.status, a.tokens) for a in limited_provider.arrivals
    ]
    assert [a.status for a in limited_provider.arrivals] == [200] * 24, seen
    assert {a for _, a in _statuses(pool, ids).values()} == {1}
    requests, _ = limited_provider.most_in_window("rpm-model", 3)
    _, tokens = limited_provider.most_in_window("tpm-model", 3)
    assert 0 < requests <= 6
    assert 0 < tokens <= 1000
    # the batch ran near both limits: paced by them, not merely slow
    assert requests >= 4 and tokens > 500


async def test_a_killed_workers_calls_come_back(
    pool, analyst, admin, provider, run_worker, settings_env
):
    settings_env(STALLED_AFTER="1.5", POLL_INTERVAL="0.05")
    limits.set_limit(pool, admin, "openai/k", concurrent=1)
    provider.push(Step(content="never delivered", delay=30))
    provider.default = ok("answered")
    _first, second = _submit(pool, analyst, "openai/k", 2)
    doomed = _spawn_worker(LLMJOBS_STALLED_AFTER="1.5")
    try:
        assert _wait(lambda: len(provider.requests) == 1, 30)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    assert _statuses(pool, [second])[second] == ("pending", 0)
    # the only call in flight belongs to a dead worker: once its heartbeat is stale, the
    # second output's job starts, before the stalled first is even recovered
    await run_worker(
        until=lambda: _statuses(pool, [second])[second][0] == "completed",
        timeout=30,
        fetch_job_polling_interval=0.05,
    )
    assert _statuses(pool, [second])[second] == ("completed", 1)
