"""SIGTERM to a real worker process: jobs in flight finish within the grace period, or go back to
the queue and are finished by the next worker. None is lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import procrastinate.worker
import pytest

from tasks import outputs as jobs
from tests.support.provider import Step, ok

PROCRASTINATE = Path(sys.executable).parent / "procrastinate"


def _start_worker(**env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(PROCRASTINATE), "--app=tasks.app", "worker"],
        env={**os.environ, "LLMJOBS_HEARTBEAT_INTERVAL": "0.5", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _submit_three(pool, analyst):
    return [
        jobs.submit(
            pool, user=analyst, template="slow {{n}}", context={"n": i}, model="openai/slow"
        )
        for i in range(3)
    ]


def test_sigterm_lets_jobs_in_flight_finish(pool, analyst, provider):
    provider.default = ok("done", delay=2.0)
    subs = _submit_three(pool, analyst)
    worker = _start_worker()
    try:
        _wait_for(lambda: len(provider.requests) == 3, 30)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    outs = [jobs.get_output(pool, s.output_id, analyst) for s in subs]
    assert [(o.status, o.attempts) for o in outs] == [("completed", 1)] * 3


async def test_sigterm_past_grace_requeues_and_next_worker_finishes(
    pool, analyst, provider, run_worker
):
    provider.push(*[Step(content="too slow", delay=10.0) for _ in range(3)])
    provider.default = ok("second try")
    subs = _submit_three(pool, analyst)
    worker = _start_worker(LLMJOBS_SHUTDOWN_GRACE="0.5")
    try:
        _wait_for(lambda: len(provider.requests) == 3, 30)
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
    finally:
        if worker.poll() is None:
            worker.kill()
    interrupted = [jobs.get_output(pool, s.output_id, analyst) for s in subs]
    assert {o.status for o in interrupted} == {"pending"}
    assert all("interrupted" in o.error_message for o in interrupted)
    with pool.connection() as conn:
        statuses = {
            r["status"]
            for r in conn.execute(
                "SELECT status FROM procrastinate_jobs WHERE task_name = 'llm_job'"
            )
        }
    assert statuses == {"todo"}

    await run_worker()
    outs = [jobs.get_output(pool, s.output_id, analyst) for s in subs]
    assert [(o.status, o.parsed_output, o.attempts) for o in outs] == [
        ("completed", "second try", 2)
    ] * 3


@pytest.mark.parametrize("swallowed", [False, True], ids=["raised", "swallowed"])
@pytest.mark.parametrize("after", [0.0, 0.5])
async def test_a_cancelled_worker_stops_wherever_the_cancel_lands(
    opened_app, monkeypatch, after, swallowed
):
    # a worker task cancelled at any point of its start or run ends, and never starts again,
    # even when procrastinate's worker ends its run quietly on the cancel (as an outage's end
    # would look to the restart loop)
    if swallowed:
        real_run = procrastinate.worker.Worker.run

        async def quiet_run(self):
            with contextlib.suppress(asyncio.CancelledError):
                await real_run(self)

        monkeypatch.setattr(procrastinate.worker.Worker, "run", quiet_run)
    task = asyncio.create_task(
        opened_app.run_worker_async(
            concurrency=2, install_signal_handlers=False, wait=True, update_heartbeat_interval=0.5
        )
    )
    await asyncio.sleep(after)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=30)
    assert done == {task}
    assert task.cancelled()
