"""A worker process killed mid-job: the stalled job is found by heartbeat and finished by another
worker; a job whose retries are spent is failed with a message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from procrastinate.jobs import Status

from tasks import outputs as jobs
from tasks.worker.maintenance import recover_stalled_jobs
from tests.support.provider import Step, ok

PROCRASTINATE = Path(sys.executable).parent / "procrastinate"


def _status(pool, output_id: int) -> str:
    with pool.connection() as conn:
        return conn.execute(
            "SELECT status FROM llm_outputs WHERE id = %s", (output_id,)
        ).fetchone()["status"]


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


async def test_sigkill_mid_job_is_recovered(pool, analyst, provider, run_worker, settings_env):
    settings_env(STALLED_AFTER="1.5")
    provider.push(Step(content="never delivered", delay=30))
    provider.default = ok("second attempt answer")
    sub = jobs.submit(
        pool, user=analyst, template="Explain {{c}}", context={"c": "x"}, model="openai/test-model"
    )
    worker = subprocess.Popen(
        [str(PROCRASTINATE), "--app=tasks.app", "worker"],
        env={**os.environ, "LLMJOBS_HEARTBEAT_INTERVAL": "0.5"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # killed while its model call is in flight
        assert _wait(lambda: len(provider.requests) == 1, 30), worker.stderr
        assert _status(pool, sub.output_id) == "processing"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert _status(pool, sub.output_id) == "processing"  # left behind by the dead worker

    # A live worker runs the periodic recovery and then the retried job.
    await run_worker(timeout=60)
    out = jobs.get_output(pool, sub.output_id, analyst)
    assert out.status == "completed"
    assert out.parsed_output == "second attempt answer"
    assert out.attempts == 2
    with pool.connection() as conn:
        job = conn.execute(
            "SELECT status, attempts FROM procrastinate_jobs WHERE id = %s", (sub.job_id,)
        ).fetchone()
    assert (job["status"], job["attempts"]) == ("succeeded", 2)


async def test_stalled_job_without_retries_left_is_failed(pool, analyst, opened_app, settings_env):
    settings_env(MAX_RETRIES="0", STALLED_AFTER="1")
    sub = jobs.submit(
        pool, user=analyst, template="hi {{x}}", context={"x": 1}, model="offline/echo"
    )
    with pool.connection() as conn:
        # A worker that took the job and then went silent.
        worker_id = conn.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour') "
            "RETURNING id"
        ).fetchone()["id"]
        conn.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s",
            (worker_id, sub.job_id),
        )
        conn.execute(
            "UPDATE llm_outputs SET status = 'processing', attempts = 1 WHERE id = %s",
            (sub.output_id,),
        )
    counts = await recover_stalled_jobs(opened_app)
    assert counts == {"retried": 0, "failed": 1}
    out = jobs.get_output(pool, sub.output_id, analyst)
    assert out.status == "failed" and "stopped responding" in out.error_message
    with pool.connection() as conn:
        status = conn.execute(
            "SELECT status FROM procrastinate_jobs WHERE id = %s", (sub.job_id,)
        ).fetchone()["status"]
    assert status == Status.FAILED.value
    # Nothing left to recover: a second pass changes nothing.
    assert await recover_stalled_jobs(opened_app) == {"retried": 0, "failed": 0}


def _answer(output_id: int, attempt: int, text: str) -> Any:
    from db.outputs import Answer

    return Answer(
        output_id=output_id,
        attempt=attempt,
        prompt="p",
        raw_response=text,
        parsed_output=text,
        cache_key=None,
        prompt_tokens=1,
        completion_tokens=1,
        cost=0,
        latency_ms=1,
    )


async def test_stale_attempt_cannot_overwrite_newer(pool, analyst, opened_app):
    from db import outputs as outputs_db

    sub = jobs.submit(
        pool, user=analyst, template="hi {{x}}", context={"x": 1}, model="offline/echo"
    )
    async with opened_app.connector.pool.connection() as conn:
        assert await outputs_db.start_attempt(conn, sub.output_id, attempt=1)
        assert await outputs_db.start_attempt(conn, sub.output_id, attempt=2)
        # attempt 1 comes back late: nothing it says is stored
        assert not await outputs_db.complete_output(conn, _answer(sub.output_id, 1, "old"))
        assert not await outputs_db.fail_output(conn, sub.output_id, attempt=1, error_message="x")
        assert not await outputs_db.start_attempt(conn, sub.output_id, attempt=1)
        assert await outputs_db.complete_output(conn, _answer(sub.output_id, 2, "new"))
        # once completed, no attempt completes it twice
        assert not await outputs_db.complete_output(conn, _answer(sub.output_id, 2, "twice"))
    out = jobs.get_output(pool, sub.output_id, analyst)
    assert (out.status, out.parsed_output, out.attempts) == ("completed", "new", 2)


async def test_attempts_started_and_completed_together_keep_the_same_rules(
    pool, analyst, opened_app
):
    """The statements a busy worker sends for several jobs at once: each output follows the
    rules of its own single statement (a stale attempt changes nothing)."""
    from db import outputs as outputs_db

    ids = [
        jobs.submit(
            pool, user=analyst, template="hi {{x}}", context={"x": n}, model="offline/echo"
        ).output_id
        for n in range(3)
    ]
    async with opened_app.connector.pool.connection() as conn:
        assert await outputs_db.start_attempt(conn, ids[2], attempt=5)
        started = await outputs_db.start_attempts(conn, [(ids[0], 1), (ids[1], 1), (ids[2], 2)])
        assert sorted(started) == ids[:2]  # ids[2] has a newer attempt running
        assert {o.status for o in started.values()} == {"processing"}
        assert started[ids[0]].context == {"x": 0}
        stored = await outputs_db.complete_outputs(
            conn,
            [
                _answer(ids[0], 1, "zero"),
                _answer(ids[1], 2, "stale"),  # attempt 2 never started
                _answer(ids[2], 5, "two"),
            ],
        )
        assert stored == {ids[0], ids[2]}
        again = await outputs_db.complete_outputs(conn, [_answer(ids[0], 1, "twice")])
        assert again == set()
    found = [jobs.get_output(pool, i, analyst) for i in ids]
    assert [(o.status, o.parsed_output) for o in found] == [
        ("completed", "zero"),
        ("processing", None),
        ("completed", "two"),
    ]
