"""Administration: who is signed in to the dashboard, and the queues (the overview, retrying a
failed job, cancelling a waiting one).

Retry and cancel change the procrastinate job and its output in one transaction, through
procrastinate's own job manager and queries, so a job and its output never disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from procrastinate import SyncPsycopgConnector
from procrastinate import sql as procrastinate_sql
from procrastinate.manager import JobManager
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from db import queues, users
from db.models import User
from db.queues import FailedJob, QueueCount, StalledJob, ThroughputPoint, WaitingJob, Worker
from tasks import accounts
from tasks.config import LLM_TASK, get_settings
from tasks.errors import Conflict, Forbidden, NotFound
from tasks.logs import get_logger

log = get_logger("llmjobs.admin")
# Used only with the caller's connection, inside its transaction: it needs no pool of its own.
_job_manager = JobManager(SyncPsycopgConnector())


# Who is signed in.


def local_user(pool: ConnectionPool) -> User:
    """The single-user mode's user: LLMJOBS_USER, created as an admin when missing."""
    return accounts.ensure_user(pool, get_settings().user, admin=True)


def user_by_id(pool: ConnectionPool, user_id: int) -> User | None:
    with pool.connection() as conn:
        return users.get_user_by_id(conn, user_id)


def user_by_email(pool: ConnectionPool, email: str) -> User | None:
    """The user with this e-mail address (case-insensitive), as an identity provider gives it."""
    if not email:
        return None
    with pool.connection() as conn:
        return users.get_user_by_email(conn, email)


def sign_in(pool: ConnectionPool, name: str, token: str) -> User | None:
    """The user named name when token is one of their live API tokens; None otherwise (which of
    the two is wrong is not told)."""
    user = accounts.authenticate(pool, token.strip())
    if user is None or user.name != name.strip():
        log.info("sign-in refused", user_name=name[:64])
        return None
    log.info("signed in", user_id=user.id)
    return user


# The queues (admins only).


class QueueOverview(BaseModel):
    counts: list[QueueCount]
    throughput: list[ThroughputPoint]
    workers: list[Worker]
    stalled_jobs: list[StalledJob]
    stalled_after: float


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise Forbidden("admins only")


def queue_overview(pool: ConnectionPool, admin: User, *, hours: int = 24) -> QueueOverview:
    """Jobs per queue and status, throughput per hour over the last `hours`, workers, and the
    running jobs whose worker stopped sending heartbeats. Raises Forbidden for a non-admin."""
    _require_admin(admin)
    stalled_after = get_settings().stalled_after
    with pool.connection() as conn:
        return QueueOverview(
            counts=queues.job_counts(conn),
            throughput=queues.throughput(conn, hours),
            workers=queues.workers(conn, stalled_after=stalled_after),
            stalled_jobs=queues.stalled_jobs(conn, stalled_after=stalled_after),
            stalled_after=stalled_after,
        )


def failed_jobs(
    pool: ConnectionPool, admin: User, *, limit: int = 25, before_id: int | None = None
) -> list[FailedJob]:
    """Failed jobs newest first with their output's error; pass the last job id for the next
    page. Raises Forbidden for a non-admin."""
    _require_admin(admin)
    with pool.connection() as conn:
        return queues.failed_jobs(conn, limit=limit, before_id=before_id)


def waiting_jobs(pool: ConnectionPool, admin: User, *, limit: int = 25) -> list[WaitingJob]:
    """Jobs waiting to run, in the order a worker takes them. Raises Forbidden for a non-admin."""
    _require_admin(admin)
    with pool.connection() as conn:
        return queues.waiting_jobs(conn, limit=limit)


def retry_failed_job(pool: ConnectionPool, job_id: int, admin: User) -> list[int]:
    """Queue a failed job again now, its output back to pending; return the output ids.

    Raises Forbidden (not an admin), NotFound (no such job), Conflict (the job is not failed, or
    its output completed meanwhile).
    """
    _require_admin(admin)
    with pool.connection() as conn, conn.transaction():
        job = queues.lock_job(conn, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        if job.status != "failed":
            raise Conflict(f"job {job_id} is {job.status}: only failed jobs can be retried")
        output_ids = queues.requeue_output(conn, job_id)
        if job.task_name == LLM_TASK and not output_ids:
            raise Conflict(f"the output of job {job_id} is completed or gone")
        # JobManager.retry_job_by_id takes no connection; its query, on ours, keeps one transaction.
        _job_manager.connector.execute_query_one_with_connection(
            conn,
            query=procrastinate_sql.queries["retry_job"],
            job_id=job_id,
            retry_at=datetime.now(UTC),
            new_priority=None,
            new_queue_name=None,
            new_lock=None,
        )
    log.info("job retried", job_id=job_id, output_ids=output_ids, user_id=admin.id)
    return output_ids


def cancel_waiting_job(pool: ConnectionPool, job_id: int, admin: User) -> list[int]:
    """Cancel a job that has not started; its output fails with "cancelled by <admin>". Returns
    the output ids.

    Raises Forbidden (not an admin), NotFound (no such job), Conflict (the job is not waiting).
    """
    _require_admin(admin)
    with pool.connection() as conn, conn.transaction():
        job = queues.lock_job(conn, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        if job.status != "todo" or not _job_manager.cancel_job_by_id(job_id, connection=conn):
            raise Conflict(f"job {job_id} is {job.status}: only waiting jobs can be cancelled")
        output_ids = queues.cancel_output(conn, job_id, error_message=f"cancelled by {admin.name}")
    log.info("job cancelled", job_id=job_id, output_ids=output_ids, user_id=admin.id)
    return output_ids
