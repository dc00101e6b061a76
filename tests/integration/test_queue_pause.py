"""Pausing a queue: a running worker process takes none of its waiting jobs until it is resumed
(then at once), while it goes on with the other queues; both fetch paths skip it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from procrastinate import SyncPsycopgConnector
from procrastinate.manager import JobManager

from tasks import admin as queue_admin
from tasks import outputs as jobs

PROCRASTINATE = Path(sys.executable).parent / "procrastinate"
_manager = JobManager(SyncPsycopgConnector())


def _status(pool, job_id: int) -> str:
    with pool.connection() as conn:
        return _manager.get_job_status(job_id, connection=conn).value


def _wait_for(predicate, timeout: float) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.05)
    return time.monotonic() - started


def _submit(pool, user, queue: str, n: int):
    return jobs.submit(
        pool, user=user, template="Hi {{n}}", context={"n": n}, model="offline/echo", queue=queue
    )


def test_a_paused_queue_waits_until_resumed(pool, analyst, admin):
    assert queue_admin.pause_queue(pool, "default", admin)
    assert not queue_admin.pause_queue(pool, "default", admin)  # paused already
    paused = [_submit(pool, analyst, "default", i) for i in range(3)]
    worker = subprocess.Popen(
        [str(PROCRASTINATE), "--app=tasks.app", "worker"],
        # a long poll: only the resume's notification can wake it within the test's second
        env={**os.environ, "LLMJOBS_POLL_INTERVAL": "30"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # the worker runs: it takes a job of another queue
        other = _submit(pool, analyst, "high", 9)
        _wait_for(lambda: _status(pool, other.job_id) == "succeeded", 60)
        time.sleep(1.0)
        assert [_status(pool, s.job_id) for s in paused] == ["todo"] * 3
        [state] = [q for q in queue_admin.queue_states(pool, admin) if q.queue_name == "default"]
        assert (state.paused, state.waiting, state.running) == (True, 3, 0)

        assert queue_admin.resume_queue(pool, "default", admin)
        took = _wait_for(lambda: all(_status(pool, s.job_id) == "succeeded" for s in paused), 10)
        assert took < 5
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert not queue_admin.resume_queue(pool, "default", admin)  # not paused


async def test_both_fetch_paths_skip_a_paused_queue(pool, analyst, admin, opened_app):
    manager = opened_app.job_manager
    sub = _submit(pool, analyst, "low", 0)
    queue_admin.pause_queue(pool, "low", admin)
    for queues in (None, ["low"], ["low", "high"]):
        assert await manager.fetch_jobs(queues, None, 5) == []
        assert await manager.fetch_job(queues=queues, worker_id=None) is None
    queue_admin.resume_queue(pool, "low", admin)
    [job] = await manager.fetch_jobs(["low"], None, 5)
    assert job.id == sub.job_id
