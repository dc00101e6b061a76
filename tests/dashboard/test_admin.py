"""Queue administration (tasks/admin.py) against real procrastinate jobs: the overview (its
throughput per minute over the last hour, per hour beyond, each event in its bucket), retrying
a failed job (its output back to pending, then completed by a worker), cancelling a waiting job
(its output failed "cancelled by <admin>"), stalled workers and jobs, and who may do it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from procrastinate import SyncPsycopgConnector
from procrastinate.manager import JobManager

from tasks import admin as queue_admin
from tasks import outputs as jobs
from tasks.errors import Conflict, Forbidden, NotFound
from tests.support.events import db_time, maintenance_job, replace_events
from tests.support.provider import error, ok

_manager = JobManager(SyncPsycopgConnector())


def _job_status(pool, job_id: int) -> str:
    with pool.connection() as conn:
        return _manager.get_job_status(job_id, connection=conn).value


def _submit(pool, user, model="offline/echo"):
    return jobs.submit(
        pool, user=user, template="Explain {{c}}", context={"c": "queues"}, model=model
    )


def _points(overview) -> dict:
    return {(p.at, p.event): p.jobs for p in overview.throughput}


def _history(jobs_: list[int], start: datetime, step: timedelta, before: datetime) -> list:
    """The same story in every window, `step` being the window's bucket: jobs one and two queued
    in the first bucket, where one succeeds and two fails; two retried by hand and three
    deferred for a retry in the second bucket; three succeeds in the third. Job three was queued
    at `before`, and a maintenance job succeeds in the first bucket. Events that are not
    counted (started) are placed too. A tick is a sixtieth of a bucket."""
    one, two, three, maintenance = jobs_
    tick = step / 60
    return [
        (one, "deferred", start + 5 * tick),
        (two, "deferred", start + 5 * tick),
        (one, "started", start + 6 * tick),
        (two, "started", start + 6 * tick),
        (one, "succeeded", start + 40 * tick),
        (two, "failed", start + 45 * tick),
        (maintenance, "deferred", start + 5 * tick),
        (maintenance, "succeeded", start + 40 * tick),
        (three, "deferred", before),
        (three, "started", start + step + 2 * tick),
        (two, "retried", start + step + 5 * tick),
        (three, "deferred_for_retry", start + step + 10 * tick),
        (three, "started", start + step + 30 * tick),
        (three, "succeeded", start + 2 * step + 5 * tick),
    ]


def _story(start: datetime, step: timedelta) -> dict:
    return {
        (start, "queued"): 2,
        (start, "succeeded"): 1,
        (start, "failed"): 1,
        (start + step, "retried"): 2,
        (start + 2 * step, "succeeded"): 1,
    }


def test_throughput_is_per_minute_over_the_last_hour_and_per_hour_beyond(pool, analyst, admin):
    jobs_ = [_submit(pool, analyst).job_id for _ in range(3)] + [maintenance_job(pool)]
    minute, hour = timedelta(minutes=1), timedelta(hours=1)

    # The last hour, per minute: buckets 20 minutes ago; job three was queued 2 hours ago,
    # outside the window.
    start = db_time(pool, "date_trunc('minute', now()) - interval '20 minutes'")
    replace_events(pool, _history(jobs_, start, minute, before=start - 2 * hour))
    short = queue_admin.queue_overview(pool, admin, hours=1)
    assert short.throughput_unit == "minute"
    assert _points(short) == _story(start, minute)

    # Longer windows, per hour: buckets 5 hours ago; job three was queued 30 hours ago, outside
    # a day and inside three.
    start = db_time(pool, "date_trunc('hour', now()) - interval '5 hours'")
    replace_events(pool, _history(jobs_, start, hour, before=start - 25 * hour))
    for hours in (2, 6, 24):
        long = queue_admin.queue_overview(pool, admin, hours=hours)
        assert long.throughput_unit == "hour"
        assert _points(long) == (_story(start, hour) if hours > 5 else {})
    longest = queue_admin.queue_overview(pool, admin, hours=72)
    assert longest.throughput_unit == "hour"
    assert _points(longest) == _story(start, hour) | {(start - 25 * hour, "queued"): 1}
    # the same events seen over the last hour: none of them is in it
    over_an_hour = queue_admin.queue_overview(pool, admin, hours=1)
    assert (over_an_hour.throughput_unit, over_an_hour.throughput) == ("minute", [])


def test_cancel_a_waiting_job_fails_its_output(pool, analyst, admin):
    sub = _submit(pool, analyst)
    waiting = queue_admin.waiting_jobs(pool, admin)
    assert [j.job_id for j in waiting] == [sub.job_id]
    assert waiting[0].output_id == sub.output_id and waiting[0].user_name == "ana"
    with pytest.raises(Forbidden):
        queue_admin.cancel_waiting_job(pool, sub.job_id, analyst)
    assert queue_admin.cancel_waiting_job(pool, sub.job_id, admin) == [sub.output_id]
    assert _job_status(pool, sub.job_id) == "cancelled"
    output = jobs.get_output(pool, sub.output_id, analyst)
    assert output.status == "failed"
    assert output.error_message == "cancelled by root-admin"
    with pytest.raises(Conflict):
        queue_admin.cancel_waiting_job(pool, sub.job_id, admin)
    with pytest.raises(NotFound):
        queue_admin.cancel_waiting_job(pool, 999_999, admin)
    counts = {
        (c.queue_name, c.status): c.jobs for c in queue_admin.queue_overview(pool, admin).counts
    }
    assert counts[("default", "cancelled")] == 1


async def test_retry_a_failed_job_runs_it_again(pool, analyst, admin, run_worker, provider):
    provider.push(error(400, "bad request from the provider"))
    sub = _submit(pool, analyst, model="openai/test-model")
    await run_worker()
    failed = jobs.get_output(pool, sub.output_id, analyst)
    assert failed.status == "failed"
    listed = queue_admin.failed_jobs(pool, admin)
    assert [(j.job_id, j.output_id) for j in listed] == [(sub.job_id, sub.output_id)]
    assert "bad request from the provider" in listed[0].error_message
    with pytest.raises(Forbidden):
        queue_admin.retry_failed_job(pool, sub.job_id, analyst)

    assert queue_admin.retry_failed_job(pool, sub.job_id, admin) == [sub.output_id]
    assert _job_status(pool, sub.job_id) == "todo"
    assert jobs.get_output(pool, sub.output_id, analyst).status == "pending"
    assert queue_admin.failed_jobs(pool, admin) == []
    with pytest.raises(Conflict):
        queue_admin.retry_failed_job(pool, sub.job_id, admin)  # waiting, not failed

    provider.push(ok("second time lucky"))
    await run_worker()
    done = jobs.get_output(pool, sub.output_id, analyst)
    assert done.status == "completed"
    assert done.parsed_output == "second time lucky"
    assert _job_status(pool, sub.job_id) == "succeeded"
    events = {p.event for p in queue_admin.queue_overview(pool, admin, hours=1).throughput}
    assert {"queued", "failed", "succeeded", "retried"} <= events


async def test_stalled_workers_and_jobs(pool, analyst, admin, opened_app, settings_env):
    settings_env(STALLED_AFTER="0.2")
    sub = _submit(pool, analyst)
    worker_id = await opened_app.job_manager.register_worker()
    job = await opened_app.job_manager.fetch_job(queues=None, worker_id=worker_id)
    assert job is not None and job.id == sub.job_id
    fresh = await asyncio.to_thread(queue_admin.queue_overview, pool, admin)
    assert [(w.worker_id, w.stalled, w.running_jobs) for w in fresh.workers] == [
        (worker_id, False, 1)
    ]
    assert fresh.stalled_jobs == []
    await asyncio.sleep(0.4)
    later = await asyncio.to_thread(queue_admin.queue_overview, pool, admin)
    assert later.workers[0].stalled
    assert [(j.job_id, j.output_id) for j in later.stalled_jobs] == [(sub.job_id, sub.output_id)]
    with pytest.raises(Forbidden):
        queue_admin.queue_overview(pool, analyst)
