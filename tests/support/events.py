"""Procrastinate events placed at chosen times of the database clock, for the throughput tests:
a job's history is replaced by the events given, so what a window counts is known exactly."""

from __future__ import annotations

from datetime import datetime


def db_time(pool, expression: str) -> datetime:
    """A time computed by the database from its own clock, e.g. "date_trunc('hour', now())"."""
    with pool.connection() as conn:
        return conn.execute(f"SELECT {expression} AS at").fetchone()["at"]


def maintenance_job(pool) -> int:
    """A job on the maintenance queue (its events are never counted as throughput)."""
    with pool.connection() as conn:
        return conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
            "VALUES ('maintenance', 'llmjobs.prune_catalog', '{}') RETURNING id"
        ).fetchone()["id"]


def replace_events(pool, placed: list[tuple[int, str, datetime]]) -> None:
    """Give the jobs named in `placed` exactly these events: (job id, event type, when)."""
    with pool.connection() as conn:
        conn.execute(
            "DELETE FROM procrastinate_events WHERE job_id = ANY(%s)",
            [sorted({job_id for job_id, _, _ in placed})],
        )
        for job_id, kind, at in placed:
            conn.execute(
                "INSERT INTO procrastinate_events (job_id, type, at) "
                "VALUES (%s, %s::procrastinate_job_event_type, %s)",
                [job_id, kind, at],
            )
