"""The queue view over procrastinate's tables: counts, throughput, failed, waiting, running and
stalled jobs, workers, maintenance jobs; the output side of retrying or cancelling a job; paused
queues; bulk retry and cancel by filter."""

from __future__ import annotations

from datetime import datetime

import psycopg

from db.models import Row
from db.queries import queries


class QueueCount(Row):
    queue_name: str
    status: str
    jobs: int


class ThroughputPoint(Row):
    at: datetime
    event: str
    jobs: int


class FailedJob(Row):
    job_id: int
    queue_name: str
    task_name: str
    attempts: int
    failed_at: datetime | None = None
    output_id: int | None = None
    model: str | None = None
    output_status: str | None = None
    error_message: str | None = None
    user_name: str | None = None


class WaitingJob(Row):
    job_id: int
    queue_name: str
    task_name: str
    priority: int
    attempts: int
    scheduled_at: datetime | None = None
    queued_at: datetime | None = None
    output_id: int | None = None
    model: str | None = None
    user_name: str | None = None


class Worker(Row):
    worker_id: int
    last_heartbeat: datetime
    seconds_since_heartbeat: float
    stalled: bool
    running_jobs: int


class StalledJob(Row):
    job_id: int
    queue_name: str
    task_name: str
    attempts: int
    worker_id: int | None = None
    last_heartbeat: datetime | None = None
    started_at: datetime | None = None
    output_id: int | None = None
    user_name: str | None = None


class BusyJob(Row):
    job_id: int
    queue_name: str
    task_name: str
    attempts: int
    worker_id: int | None = None
    started_at: datetime | None = None
    output_id: int | None = None
    model: str | None = None
    user_name: str | None = None


class MaintenanceTask(Row):
    task_name: str
    waiting: int
    running: int
    succeeded: int
    failed: int
    last_run_at: datetime | None = None


class PausedQueue(Row):
    queue_name: str
    paused_at: datetime
    paused_by: str


class ActiveCount(Row):
    queue_name: str
    waiting: int
    running: int


class BulkResult(Row):
    jobs: int
    outputs: int


class LockedJob(Row):
    id: int
    status: str
    queue_name: str
    task_name: str


def begin_snapshot(conn: psycopg.Connection) -> None:
    """As the first statement of a transaction: every later read sees the same snapshot."""
    conn.execute(queries["queue_snapshot"])


def job_counts(conn: psycopg.Connection) -> list[QueueCount]:
    return [QueueCount.model_validate(r) for r in conn.execute(queries["queue_job_counts"])]


def throughput(conn: psycopg.Connection, hours: int, unit: str) -> list[ThroughputPoint]:
    """Events per `unit` ("minute" or "hour") over the last `hours` hours."""
    rows = conn.execute(queries["queue_throughput"], {"hours": hours, "unit": unit})
    return [ThroughputPoint.model_validate(r) for r in rows]


def failed_jobs(
    conn: psycopg.Connection, *, limit: int, before_id: int | None = None
) -> list[FailedJob]:
    rows = conn.execute(queries["queue_failed_jobs"], {"limit": limit, "before_id": before_id})
    return [FailedJob.model_validate(r) for r in rows]


def waiting_jobs(conn: psycopg.Connection, *, limit: int) -> list[WaitingJob]:
    rows = conn.execute(queries["queue_waiting_jobs"], {"limit": limit})
    return [WaitingJob.model_validate(r) for r in rows]


def workers(conn: psycopg.Connection, *, stalled_after: float) -> list[Worker]:
    rows = conn.execute(queries["queue_workers"], {"stalled_after": stalled_after})
    return [Worker.model_validate(r) for r in rows]


def stalled_jobs(conn: psycopg.Connection, *, stalled_after: float, limit: int) -> list[StalledJob]:
    params = {"stalled_after": stalled_after, "limit": limit}
    return [
        StalledJob.model_validate(r) for r in conn.execute(queries["queue_stalled_jobs"], params)
    ]


def busy_jobs(conn: psycopg.Connection, *, limit: int) -> list[BusyJob]:
    rows = conn.execute(queries["queue_busy_jobs"], {"limit": limit})
    return [BusyJob.model_validate(r) for r in rows]


def maintenance(conn: psycopg.Connection) -> list[MaintenanceTask]:
    return [MaintenanceTask.model_validate(r) for r in conn.execute(queries["queue_maintenance"])]


def paused_queues(conn: psycopg.Connection) -> list[PausedQueue]:
    return [PausedQueue.model_validate(r) for r in conn.execute(queries["queue_paused"])]


def pause(conn: psycopg.Connection, queue: str, *, paused_by: str) -> bool:
    """Pause queue; False when it was paused already."""
    params = {"queue": queue, "paused_by": paused_by}
    return conn.execute(queries["queue_pause"], params).fetchone() is not None


def resume(conn: psycopg.Connection, queue: str) -> bool:
    """Resume queue and wake the workers (at commit); False when it was not paused."""
    return conn.execute(queries["queue_resume"], {"queue": queue}).fetchone() is not None


def active_counts(conn: psycopg.Connection) -> list[ActiveCount]:
    return [ActiveCount.model_validate(r) for r in conn.execute(queries["queue_active_counts"])]


def bulk_count(conn: psycopg.Connection, status: str, filters: dict, *, limit: int) -> int:
    """How many jobs in status the filters pick now (at most limit). filters: queue, model,
    error, older_than_minutes (None: not filtered)."""
    params = {**filters, "status": status, "limit": limit}
    return conn.execute(queries["queue_bulk_count"], params).fetchone()["jobs"]


def bulk_retry(conn: psycopg.Connection, filters: dict, *, limit: int) -> BulkResult:
    """Queue again the failed jobs bulk_count("failed", filters) counts."""
    row = conn.execute(queries["queue_bulk_retry"], {**filters, "limit": limit}).fetchone()
    return BulkResult.model_validate(row)


def bulk_cancel(
    conn: psycopg.Connection, filters: dict, *, limit: int, error_message: str
) -> BulkResult:
    """Cancel the waiting jobs bulk_count("todo", filters) counts."""
    params = {**filters, "limit": limit, "error_message": error_message}
    return BulkResult.model_validate(conn.execute(queries["queue_bulk_cancel"], params).fetchone())


def lock_job(conn: psycopg.Connection, job_id: int) -> LockedJob | None:
    """The job, locked for the rest of the transaction; None when there is no such job."""
    row = conn.execute(queries["queue_lock_job"], {"job_id": job_id}).fetchone()
    return LockedJob.model_validate(row) if row else None


def requeue_output(conn: psycopg.Connection, job_id: int) -> list[int]:
    """Put the unfinished or failed output of a job back to pending; return the ids changed."""
    return [r["id"] for r in conn.execute(queries["queue_requeue_output"], {"job_id": job_id})]


def cancel_output(conn: psycopg.Connection, job_id: int, *, error_message: str) -> list[int]:
    """Fail the unfinished output of a cancelled job with error_message; return the ids failed."""
    params = {"job_id": job_id, "error_message": error_message}
    return [r["id"] for r in conn.execute(queries["queue_cancel_output"], params)]


# A bulk write refreshes the statistics of a queue table it grew by this many rows and by this
# share of the rows last counted (autovacuum's own share, acted on at once rather than a minute
# or more later, or never where autovacuum is off).
ANALYZE_MIN_ROWS = 500
ANALYZE_SHARE = 0.1
ANALYZE_LOCK_TIMEOUT = "1s"  # also in db/sql/queries.sql (analyze_lock_timeout)
_ANALYZE = {"procrastinate_jobs": "analyze_jobs", "llm_outputs": "analyze_outputs"}


def analyze_grown_tables(conn: psycopg.Connection, rows: int) -> list[str]:
    """Inside a bulk write of `rows` jobs and outputs, as its last statement: ANALYZE the queue
    tables it grew a lot, so the workers' fetches are planned for the backlog the write makes
    (without statistics a planner takes it for a handful of rows and reads all of it at every
    fetch). ANALYZE counts the transaction's own new rows, and the statistics become visible
    with them at commit, so no worker plans on the old ones and the sampling is done before the
    workers start. Statistics are a help, never a reason to fail the write: when a table's lock
    is not had within ANALYZE_LOCK_TIMEOUT (another ANALYZE or a VACUUM holds it), it is left to
    autovacuum. Returns the tables analyzed. A role that may not analyze a table gets
    PostgreSQL's warning, not an error."""
    if rows < ANALYZE_MIN_ROWS:
        return []
    params = {"rows": rows, "min_rows": ANALYZE_MIN_ROWS, "share": ANALYZE_SHARE}
    grown = [r["name"] for r in conn.execute(queries["queue_tables_grown"], params)]
    analyzed = []
    for name in grown:
        try:
            with conn.transaction():  # a savepoint: a lock timeout undoes this ANALYZE alone
                conn.execute(queries["analyze_lock_timeout"])
                conn.execute(queries[_ANALYZE[name]])
        except psycopg.errors.LockNotAvailable:
            continue
        analyzed.append(name)
    return analyzed


async def analyze_stale_tables(conn: psycopg.AsyncConnection) -> list[str]:
    """ANALYZE the queue tables whose statistics lag behind their rows (see queue_tables_stale),
    whatever wrote them; returns the tables analyzed. A table whose lock is not had within
    ANALYZE_LOCK_TIMEOUT is left for the next time."""
    params = {"min_rows": ANALYZE_MIN_ROWS, "share": ANALYZE_SHARE}
    cursor = await conn.execute(queries["queue_tables_stale"], params)
    stale = [r["name"] for r in await cursor.fetchall()]
    analyzed = []
    for name in stale:
        try:
            async with conn.transaction():
                await conn.execute(queries["analyze_lock_timeout"])
                await conn.execute(queries[_ANALYZE[name]])
        except psycopg.errors.LockNotAvailable:
            continue
        analyzed.append(name)
    return analyzed
