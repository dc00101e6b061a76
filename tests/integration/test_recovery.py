"""A worker process killed mid-job: the stalled job is found by heartbeat and finished by another
worker; a job whose retries are spent is failed with a message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from procrastinate.jobs import Status

from tasks import submit as jobs
from tasks.maintenance import recover_stalled_jobs
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


async def test_stale_attempt_cannot_overwrite_newer(pool, analyst, opened_app):
    from db import outputs as outputs_db

    sub = jobs.submit(
        pool, user=analyst, template="hi {{x}}", context={"x": 1}, model="offline/echo"
    )
    async with opened_app.connector.pool.connection() as conn:
        assert await outputs_db.start_attempt(conn, sub.output_id, attempt=1)
        assert await outputs_db.start_attempt(conn, sub.output_id, attempt=2)
        # attempt 1 comes back late: nothing it says is stored
        assert not await outputs_db.complete_output(
            conn,
            sub.output_id,
            attempt=1,
            prompt="p",
            raw_response="old",
            parsed_output="old",
            prompt_tokens=1,
            completion_tokens=1,
            cost=0,
            latency_ms=1,
        )
        assert not await outputs_db.fail_output(conn, sub.output_id, attempt=1, error_message="x")
        assert not await outputs_db.start_attempt(conn, sub.output_id, attempt=1)
        assert await outputs_db.complete_output(
            conn,
            sub.output_id,
            attempt=2,
            prompt="p",
            raw_response="new",
            parsed_output="new",
            prompt_tokens=1,
            completion_tokens=1,
            cost=0,
            latency_ms=1,
        )
        # once completed, no attempt completes it twice
        assert not await outputs_db.complete_output(
            conn,
            sub.output_id,
            attempt=2,
            prompt="p",
            raw_response="twice",
            parsed_output="twice",
            prompt_tokens=1,
            completion_tokens=1,
            cost=0,
            latency_ms=1,
        )
    out = jobs.get_output(pool, sub.output_id, analyst)
    assert (out.status, out.parsed_output, out.attempts) == ("completed", "new", 2)
