"""Administration: who is signed in to the dashboard, and the queues (the overview, retrying a
failed job, cancelling a waiting one, the same by filter in bulk, pausing and resuming a queue).

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
from db.queues import (
    BusyJob,
    FailedJob,
    MaintenanceTask,
    PausedQueue,
    QueueCount,
    StalledJob,
    ThroughputPoint,
    WaitingJob,
    Worker,
)
from tasks import accounts
from tasks.config import LLM_TASK, MAINTENANCE_QUEUE, QUEUES, get_settings
from tasks.errors import Conflict, Forbidden, InvalidInput, NotFound
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


# Queues an admin may pause: the job queues and the maintenance queue (pausing it stops the
# periodic clean-ups and recoveries until it is resumed).
PAUSABLE_QUEUES = (*QUEUES, MAINTENANCE_QUEUE)
# Longest throughput window, and the longest shown per minute rather than per hour.
MAX_HOURS = 24 * 31
PER_MINUTE_UP_TO_HOURS = 1
# How many rows each list of the overview shows.
LIST_LIMIT = 10


class QueueOverview(BaseModel):
    """Everything the Queues page shows, read in one snapshot so its figures and lists agree.
    `counts` holds every queue, the maintenance queue included (callers show it apart)."""

    counts: list[QueueCount]
    paused: list[PausedQueue]
    throughput: list[ThroughputPoint]
    throughput_unit: str
    busy_jobs: list[BusyJob]
    waiting_jobs: list[WaitingJob]
    failed_jobs: list[FailedJob]
    more_failed: bool
    workers: list[Worker]
    stalled_jobs: list[StalledJob]
    stalled_after: float
    maintenance: list[MaintenanceTask]


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise Forbidden("admins only")


def queue_overview(
    pool: ConnectionPool,
    admin: User,
    *,
    hours: int = 24,
    limit: int = LIST_LIMIT,
    failed_before: int | None = None,
) -> QueueOverview:
    """Jobs per queue and status, paused queues, throughput over the last `hours` (per minute up
    to an hour, else per hour), running, waiting and failed jobs (`limit` each; failed ones
    below the job id `failed_before`), workers, stalled jobs and the maintenance tasks, all in
    one read-only REPEATABLE READ transaction. Raises Forbidden for a non-admin, InvalidInput
    for hours outside 1..MAX_HOURS or limit outside 1..100."""
    _require_admin(admin)
    if not isinstance(hours, int) or not 1 <= hours <= MAX_HOURS:
        raise InvalidInput("hours", f"from 1 to {MAX_HOURS}")
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise InvalidInput("limit", "from 1 to 100")
    unit = "minute" if hours <= PER_MINUTE_UP_TO_HOURS else "hour"
    stalled_after = get_settings().stalled_after
    with pool.connection() as conn, conn.transaction():
        queues.begin_snapshot(conn)
        failed = queues.failed_jobs(conn, limit=limit + 1, before_id=failed_before)
        return QueueOverview(
            counts=queues.job_counts(conn),
            paused=queues.paused_queues(conn),
            throughput=queues.throughput(conn, hours, unit),
            throughput_unit=unit,
            busy_jobs=queues.busy_jobs(conn, limit=limit),
            waiting_jobs=queues.waiting_jobs(conn, limit=limit),
            failed_jobs=failed[:limit],
            more_failed=len(failed) > limit,
            workers=queues.workers(conn, stalled_after=stalled_after),
            stalled_jobs=queues.stalled_jobs(conn, stalled_after=stalled_after, limit=limit),
            stalled_after=stalled_after,
            maintenance=queues.maintenance(conn),
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
            raise NotFound(f"Job {job_id} does not exist (or was deleted).")
        if job.status != "failed":
            raise Conflict(f"Job {job_id} {_is(job.status)}: only failed jobs can be retried.")
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
            raise NotFound(f"Job {job_id} does not exist (or was deleted).")
        if job.status != "todo" or not _job_manager.cancel_job_by_id(job_id, connection=conn):
            raise Conflict(f"Job {job_id} {_is(job.status)}: only waiting jobs can be cancelled.")
        output_ids = queues.cancel_output(conn, job_id, error_message=f"cancelled by {admin.name}")
    log.info("job cancelled", job_id=job_id, output_ids=output_ids, user_id=admin.id)
    return output_ids


_STATUS_WORDS = {
    "todo": "is waiting",
    "doing": "is running",
    "succeeded": "already finished (it succeeded)",
    "failed": "already finished (it failed)",
    "cancelled": "was already cancelled",
    "aborted": "was already aborted",
}


def _is(status: str) -> str:
    """A job's status as the end of a sentence starting "Job N "."""
    return _STATUS_WORDS.get(status, f"is {status}")


# Bulk actions by filter. Each acts on at most BULK_LIMIT jobs (the oldest first).

BULK_LIMIT = 10_000
MAX_FILTER_TEXT = 200
MAX_AGE_MINUTES = 60 * 24 * 366
# action -> the status of the jobs it changes
BULK_ACTIONS = {"retry": "failed", "cancel": "todo"}


class BulkFilter(BaseModel):
    """Which jobs a bulk action picks; None filters nothing. Build it with bulk_filter."""

    queue: str | None = None
    model: str | None = None
    error: str | None = None
    older_than_minutes: int | None = None


class BulkOutcome(BaseModel):
    action: str
    previewed: int
    changed: int
    outputs: int
    message: str


def _text(field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, "must be text")
    value = value.strip()
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    if len(value) > MAX_FILTER_TEXT:
        raise InvalidInput(field, f"at most {MAX_FILTER_TEXT} characters")
    return value or None


def bulk_filter(
    *,
    queue: object = None,
    model: object = None,
    error: object = None,
    older_than_minutes: object = None,
) -> BulkFilter:
    """A checked filter. Raises InvalidInput naming the field: an unknown queue, text over
    MAX_FILTER_TEXT characters, an age that is not a whole number of minutes from 0 to
    MAX_AGE_MINUTES."""
    name = _text("queue", queue)
    if name is not None and name not in QUEUES:
        raise InvalidInput("queue", f"unknown queue {name[:64]!r} (one of {', '.join(QUEUES)})")
    age = older_than_minutes
    if age is not None and (
        isinstance(age, bool) or not isinstance(age, int) or not 0 <= age <= MAX_AGE_MINUTES
    ):
        raise InvalidInput("older_than_minutes", f"a whole number from 0 to {MAX_AGE_MINUTES}")
    return BulkFilter(
        queue=name,
        model=_text("model", model),
        error=_text("error", error),
        older_than_minutes=age or None,
    )


def _bulk_status(action: str) -> str:
    if action not in BULK_ACTIONS:
        raise InvalidInput("action", f"one of {', '.join(BULK_ACTIONS)}")
    return BULK_ACTIONS[action]


def bulk_preview(pool: ConnectionPool, admin: User, action: str, flt: BulkFilter) -> int:
    """How many jobs `action` ("retry": failed jobs; "cancel": waiting jobs) would change now
    with this filter, at most BULK_LIMIT. Raises Forbidden, InvalidInput (unknown action)."""
    _require_admin(admin)
    status = _bulk_status(action)
    with pool.connection() as conn:
        return queues.bulk_count(conn, status, flt.model_dump(), limit=BULK_LIMIT)


def bulk_act(
    pool: ConnectionPool, admin: User, action: str, flt: BulkFilter, *, previewed: int
) -> BulkOutcome:
    """Retry the failed jobs or cancel the waiting jobs the filter picks (the WHERE of
    bulk_preview, at most BULK_LIMIT), their outputs with them, in one statement; `previewed`
    is the count the admin confirmed, and the outcome's message says in words when fewer
    changed. Raises Forbidden, InvalidInput (unknown action)."""
    _require_admin(admin)
    _bulk_status(action)
    with pool.connection() as conn, conn.transaction():
        if action == "retry":
            done = queues.bulk_retry(conn, flt.model_dump(), limit=BULK_LIMIT)
        else:
            done = queues.bulk_cancel(
                conn, flt.model_dump(), limit=BULK_LIMIT, error_message=f"cancelled by {admin.name}"
            )
    log.info("bulk action", action=action, jobs=done.jobs, previewed=previewed, user_id=admin.id)
    return BulkOutcome(
        action=action,
        previewed=previewed,
        changed=done.jobs,
        outputs=done.outputs,
        message=bulk_message(action, previewed, done.jobs, done.outputs),
    )


def _jobs(n: int) -> str:
    return f"{n:,} job" + ("" if n == 1 else "s")


def bulk_message(action: str, previewed: int, changed: int, outputs: int) -> str:
    """What a bulk action did, in a sentence or two."""
    verb, their = (
        ("Queued again", "back to pending") if action == "retry" else ("Cancelled", "failed")
    )
    said = f"{verb} {_jobs(changed)}"
    said += f" ({outputs:,} output{'' if outputs == 1 else 's'} {their})." if outputs else "."
    if changed < previewed:
        gone = previewed - changed
        state = "failed" if action == "retry" else "waiting"
        said += (
            f" {_jobs(previewed)} were previewed: {gone:,} {'was' if gone == 1 else 'were'} no "
            f"longer {state} (a worker took them, or they finished, meanwhile)."
        )
    return said


# Pausing a queue: workers on every machine take none of its waiting jobs (their fetch reads the
# paused queues in PostgreSQL); running jobs finish, waiting jobs stay.


class QueueState(BaseModel):
    queue_name: str
    paused: bool
    paused_at: datetime | None = None
    paused_by: str | None = None
    waiting: int = 0
    running: int = 0


def _pausable(queue: object) -> str:
    if not isinstance(queue, str) or queue.strip() not in PAUSABLE_QUEUES:
        shown = repr(queue[:64]) if isinstance(queue, str) else "that"
        raise InvalidInput("queue", f"unknown queue {shown} (one of {', '.join(PAUSABLE_QUEUES)})")
    return queue.strip()


def pause_queue(pool: ConnectionPool, queue: str, admin: User) -> bool:
    """Pause a queue: workers take none of its waiting jobs until it is resumed. False when it
    was paused already. Raises Forbidden, InvalidInput (field "queue": not a known queue)."""
    _require_admin(admin)
    name = _pausable(queue)
    with pool.connection() as conn:
        changed = queues.pause(conn, name, paused_by=admin.name)
    log.info("queue paused", queue=name, changed=changed, user_id=admin.id)
    return changed


def resume_queue(pool: ConnectionPool, queue: str, admin: User) -> bool:
    """Resume a paused queue and wake the workers. False when it was not paused. Raises
    Forbidden, InvalidInput (field "queue": not a known queue)."""
    _require_admin(admin)
    name = _pausable(queue)
    with pool.connection() as conn:
        changed = queues.resume(conn, name)
    log.info("queue resumed", queue=name, changed=changed, user_id=admin.id)
    return changed


def queue_states(pool: ConnectionPool, admin: User) -> list[QueueState]:
    """Every known queue (and any other holding waiting or running jobs): paused or not, by
    whom and since when, how many jobs wait and run. Raises Forbidden."""
    _require_admin(admin)
    with pool.connection() as conn, conn.transaction():
        queues.begin_snapshot(conn)
        paused = {p.queue_name: p for p in queues.paused_queues(conn)}
        active = {a.queue_name: a for a in queues.active_counts(conn)}
    names = list(PAUSABLE_QUEUES) + sorted(set(active) - set(PAUSABLE_QUEUES))
    return [
        QueueState(
            queue_name=name,
            paused=name in paused,
            paused_at=paused[name].paused_at if name in paused else None,
            paused_by=paused[name].paused_by if name in paused else None,
            waiting=active[name].waiting if name in active else 0,
            running=active[name].running if name in active else 0,
        )
        for name in names
    ]
