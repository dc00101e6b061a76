"""Periodic upkeep every worker runs on the maintenance queue.

Recovery of jobs whose worker died: a worker killed mid-job leaves its job `doing` in
procrastinate and its output `processing`. Workers send heartbeats; a job whose worker has been
silent for LLMJOBS_STALLED_AFTER seconds is stalled. This task sends it back to the queue
(another attempt) or, when its retries are spent, fails it and its output with a message.

The analytics rollup: every minute, the periods (days, and hours of the current day) that
settled or changed since are rolled up, so the dashboard's aggregates read few rows.

The queue's statistics: every 10 seconds, the job and output tables whose planner statistics lag
behind their rows (a backlog grown by single submissions, or changed a lot where autovacuum is
off or late) are analyzed, so the workers' fetches never run on plans made for a near-empty
table (such a plan reads the whole backlog for every job it takes). Bulk writes analyze
the tables themselves as they commit.

The model catalog: every hour, the entries of workers not seen for a day (killed ones never
withdraw theirs) are removed.

Provider limits: every ten minutes, the calls and 429s older than an hour (the Queues page shows
the last hour) and the buckets idle as long are removed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from procrastinate.jobs import Status

from db import analytics, limits, outputs, queues
from tasks.config import LLM_TASK, MAINTENANCE_PRIORITY, MAINTENANCE_QUEUE, get_settings
from tasks.llm import catalog
from tasks.logs import get_logger
from tasks.worker.app import app

log = get_logger("llmjobs.maintenance")

# Periods one refresh rolls up at most: a database migrated with a long history catches up over
# a few runs instead of in one long transaction.
REFRESH_PERIODS = 24


def _upkeep(name: str, cron: str, periodic_id: str | None = None) -> Callable[[Any], Any]:
    """A periodic task `llmjobs.<name>` on the maintenance queue, deferred on `cron` (its
    periodic id `name` unless given), with at most one job of it waiting at a time."""

    def register(func: Any) -> Any:
        task = app.task(
            name=f"llmjobs.{name}",
            queue=MAINTENANCE_QUEUE,
            priority=MAINTENANCE_PRIORITY,
            pass_context=True,
            queueing_lock=name,
        )(func)
        return app.periodic(cron=cron, periodic_id=periodic_id or name)(task)

    return register


async def recover_stalled_jobs(procrastinate_app: Any) -> dict[str, int]:
    """Retry or fail every stalled LLM job; return the counts."""
    settings = get_settings()
    manager = procrastinate_app.job_manager
    stalled = await manager.get_stalled_jobs(
        task_name=LLM_TASK, seconds_since_heartbeat=settings.stalled_after
    )
    counts = {"retried": 0, "failed": 0}
    for job in stalled:
        output_id = job.task_kwargs.get("output_id")
        if job.attempts < settings.max_retries:
            await manager.retry_job(job)
            counts["retried"] += 1
            log.warning(
                "stalled job retried", job_id=job.id, output_id=output_id, attempt=job.attempts + 1
            )
            continue
        await manager.finish_job(job, status=Status.FAILED, delete_job=False)
        async with procrastinate_app.connector.pool.connection() as conn:
            await outputs.fail_output_by_job(
                conn,
                job.id,
                error_message=f"the worker running this job stopped responding "
                f"{job.attempts + 1} times; no retries left",
            )
        counts["failed"] += 1
        log.error(
            "failed",
            job_id=job.id,
            output_id=output_id,
            attempt=job.attempts + 1,
            error="stalled, retries spent",
        )
    return counts


@_upkeep("recover_stalled_jobs", cron="* * * * * */10", periodic_id="recover_stalled")
async def recover_stalled_jobs_task(context: Any, timestamp: int) -> dict[str, int] | None:
    # A result only when something was done: procrastinate's success line then stays at INFO
    # (tasks.logs turns a maintenance job's lines to DEBUG otherwise).
    counts = await recover_stalled_jobs(context.app)
    if any(counts.values()):
        log.info("stalled jobs recovered", **counts)
        return counts
    return None


@_upkeep("refresh_analytics", cron="* * * * *")
async def refresh_analytics_task(context: Any, timestamp: int) -> dict[str, int] | None:
    async with context.app.connector.pool.connection() as conn:
        periods = await analytics.refresh_rollup_async(conn, max_periods=REFRESH_PERIODS)
    if periods:
        log.info("analytics rolled up", periods=periods)
        return {"periods": periods}
    return None


@_upkeep("prune_catalog", cron="17 * * * *")
async def prune_catalog_task(context: Any, timestamp: int) -> dict[str, int] | None:
    workers = await catalog.prune(context.app.connector.pool)
    if workers:
        log.info("model catalog pruned", workers=workers)
        return {"workers": workers}
    return None


@_upkeep("refresh_queue_statistics", cron="* * * * * */10")
async def refresh_queue_statistics_task(context: Any, timestamp: int) -> dict[str, Any] | None:
    async with context.app.connector.pool.connection() as conn:
        analyzed = await queues.analyze_stale_tables(conn)
    if analyzed:
        log.info("queue statistics refreshed", tables=analyzed)
        return {"analyzed": analyzed}
    return None


@_upkeep("prune_limits", cron="*/10 * * * *")
async def prune_limits_task(context: Any, timestamp: int) -> dict[str, int] | None:
    async with context.app.connector.pool.connection() as conn:
        deleted = await limits.prune(conn)
    if deleted:
        log.info("provider limits' history pruned", rows=deleted)
        return {"rows": deleted}
    return None
