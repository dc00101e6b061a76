"""The procrastinate App: connector, queues and worker defaults.

No connection is made at import: the database URL is resolved when the app is opened (by the
worker CLI or by `open_app`).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import Any

import procrastinate
import procrastinate.worker
import psycopg
from procrastinate import job_context, jobs, manager, signals, utils
from procrastinate.exceptions import ConnectorException
from psycopg_pool import AsyncConnectionPool

from db import limits, outputs
from db.models import LLMOutput
from db.pool import async_pool_kwargs
from db.queries import queries
from tasks import logs
from tasks.config import LLM_TASK, SettingsError, database_url, get_settings
from tasks.llm import catalog
from tasks.logs import configure_logging, get_logger
from tasks.worker.coalesce import Coalescer

log = get_logger("llmjobs.worker")

# The end of a limited call: job id, tokens used, answer's tokens, requests made.
Release = tuple[int, int | None, int | None, int]


async def _autocommit(conn: psycopg.AsyncConnection) -> None:
    await conn.set_autocommit(True)


def _pool_factory(**kwargs: Any) -> AsyncConnectionPool:
    """The worker's pool. Every statement the worker runs stands alone (procrastinate's calls
    and the job's reads and writes), so connections are in autocommit: no COMMIT round trip
    after each. procrastinate asks for a check at every checkout, another round trip per query;
    it is dropped, and the worker checks the whole pool after a database outage instead."""
    options = async_pool_kwargs(database_url(), max_size=worker_pool_size())
    return AsyncConnectionPool(
        **{**options, **kwargs, "check": None, "configure": _autocommit, "open": False}
    )


# Jobs hold a connection only for a statement, and a busy worker's statements are coalesced
# (tasks/worker/coalesce.py), so a few connections serve hundreds of jobs in flight.
POOL_SIZE_CAP = 20


def worker_pool_size() -> int:
    """Connections of a worker's pool: LLMJOBS_WORKER_POOL_SIZE, else concurrency + 2 (for the
    heartbeat and the fetch), from 4 to POOL_SIZE_CAP."""
    settings = get_settings()
    if settings.worker_pool_size:
        return settings.worker_pool_size
    return min(POOL_SIZE_CAP, max(4, settings.worker_concurrency + 2))


def _worker_defaults() -> dict[str, Any]:
    from tasks.worker.middleware import final_failure

    settings = get_settings()
    return {
        "concurrency": settings.worker_concurrency,
        "fetch_job_polling_interval": settings.poll_interval,
        "update_heartbeat_interval": settings.heartbeat_interval,
        "stalled_worker_timeout": settings.stalled_after,
        # After the grace period, jobs still running are interrupted and go back to the queue.
        "shutdown_graceful_timeout": settings.shutdown_grace,
        "delete_jobs": "never",
        "worker_middleware": [final_failure],
    }


def fetchers_for(concurrency: int) -> int:
    """How many fetch loops a worker runs: LLMJOBS_WORKER_FETCHERS, else one per 25 slots (1 to 8).

    A fetch takes every free slot at once, but while the worker's event loop is busy with model
    calls each fetch waits its turn on the loop, so one fetch loop alone refills a few hundred
    slots late when calls last a second or less."""
    configured = get_settings().worker_fetchers
    return configured if configured else max(1, min(8, concurrency // 25))


# The most jobs one fetch takes, however many slots are free.
FETCH_BATCH = 50

# Fast paths: what this module takes from procrastinate beyond its public API (the versions
# pyproject.toml allows, checked by tests/integration/test_procrastinate_contract.py), for a
# worker that takes its free slots in one statement and finishes concurrent jobs together:
# - the Worker's private fetch loop and state, which LLMJobsWorker replaces and uses;
# - App._worker, which builds it;
# - procrastinate's versioned SQL functions, which our statements call.
# When one is gone the worker falls back to procrastinate's own behaviour with one WARNING;
# LLMJOBS_WORKER_FAST_PATH=0 uses procrastinate's own worker, fetch loop and finishes throughout
# (the fetch still skips paused queues).
WORKER_INTERNALS = (
    "_fetch_and_process_jobs",
    "_process_job",
    "_stop_event",
    "_job_semaphore",
    "_new_job_event",
    "_running_jobs",
    "_job_ids_to_abort",
)
PROCRASTINATE_FUNCTIONS = (
    "procrastinate_fetch_job_v2",
    "procrastinate_finish_job_v1",
    "procrastinate_defer_jobs_v1",
    "procrastinate_cancel_job_v1",
)
# Provider limits (migration 0017): to look past the jobs of a model at its limit, our fetch
# chooses jobs as procrastinate 3.10's procrastinate_fetch_job_v2 does, in a copy of its query.
# The md5 of that function's body (whitespace folded) it was copied from: with another body, the
# fetch is procrastinate's own and limits are off, with one WARNING (the fast path or not).
FETCH_JOB_V2_MD5 = "cc9db46e6a95fb3d87cc4e9c96183520"


def _fallback(what: str, detail: str) -> None:
    """Log once per process that a fast path is gone and procrastinate's own behaviour is used."""
    logs.warn_once(
        log,
        what,
        "worker fast path unavailable; using procrastinate's own behaviour",
        fast_path=what,
        detail=detail,
        procrastinate_version=procrastinate.__version__,
    )


def fast_path() -> bool:
    """Whether the worker's fast paths are on (LLMJOBS_WORKER_FAST_PATH, on by default)."""
    try:
        return get_settings().worker_fast_path
    except SettingsError:  # every process that imports the app reports bad settings itself
        return True


def missing_internals(worker: procrastinate.worker.Worker) -> list[str]:
    """The private parts of procrastinate's Worker that LLMJobsWorker uses and this one lacks."""
    return [name for name in WORKER_INTERNALS if not hasattr(worker, name)]


class LLMJobsJobManager(manager.JobManager):
    """procrastinate's JobManager, with the worker's fetches and finishes in fewer statements,
    and the LLM job's writes to its output (`start_attempt`, `complete_output`).

    `fetch_jobs` takes up to `count` jobs in one statement (llmjobs_fetch_jobs: procrastinate's
    own fetch, called until the queue is empty or `count` are taken), and in the same statement
    starts the attempt of each LLM job's output, which the job's `start_attempt` then returns
    rather than sending a statement of its own. The attempts' starts, the answers and the
    finishes that concurrent jobs send together go in one statement each (Coalescer); retries and
    everything else are procrastinate's own. A batch statement that fails falls back to the
    single ones. Both fetches, the batched one and procrastinate's single one, skip the paused
    queues (llmjobs_paused_queues)."""

    def __init__(self, connector: Any):
        super().__init__(connector=connector)
        self._finishes: Coalescer[tuple[int, str, bool], None] = Coalescer(
            self._finish_many, key=lambda finish: finish[0], run_one=self._finish_one
        )
        self._started: dict[int, dict[str, Any]] = {}
        self._starts: Coalescer[tuple[int, int], LLMOutput | None] = Coalescer(
            self._start_many, key=lambda pair: pair[0]
        )
        self._answers: Coalescer[outputs.Answer, bool] = Coalescer(
            self._complete_many, key=lambda answer: answer.output_id
        )
        # jobs whose fetch took capacity under their model's limit: job id -> model
        self._limited: dict[int, str] = {}
        # False when the database's procrastinate chooses jobs otherwise than our copy does
        self.limits_on = True
        self._releases: Coalescer[Release, None] = Coalescer(
            self._release_many, key=lambda release: release[0]
        )

    def _limit_options(self) -> dict[str, Any]:
        settings = get_settings()
        return {
            "task": LLM_TASK if self.limits_on else None,
            "minute": settings.limit_minute,
            "stalled": settings.stalled_after,
        }

    async def fetch_jobs(self, queues: Any, worker_id: int, count: int) -> list[jobs.Job]:
        try:
            rows = await self.connector.execute_query_all_async(
                query=queries["fetch_jobs"],
                queues=queues,
                worker_id=worker_id,
                count=count,
                **self._limit_options(),
            )
        except ConnectorException as exc:
            if not isinstance(exc.__cause__, psycopg.errors.UndefinedFunction):
                raise
            # a database not yet migrated, or a procrastinate without the versioned function
            # ours calls: one job per fetch, as procrastinate does
            _fallback("batched_fetch", str(exc.__cause__).splitlines()[0])
            job = await self.fetch_job(queues=queues, worker_id=worker_id)
            return [job] if job else []
        for row in rows:
            if row["started"] is not None:
                self._started[row["id"]] = row["started"]
            if row["limited"] is not None:
                self._limited[row["id"]] = row["limited"]
        return [jobs.Job.from_row(row) for row in rows]

    async def fetch_job(self, queues: Any, worker_id: int) -> jobs.Job | None:
        try:
            rows = await self.connector.execute_query_all_async(
                query=queries["fetch_one_job"],
                queues=queues,
                worker_id=worker_id,
                **self._limit_options(),
            )
        except ConnectorException as exc:
            if not isinstance(exc.__cause__, psycopg.errors.UndefinedFunction):
                raise
            return await super().fetch_job(queues=queues, worker_id=worker_id)
        if rows and rows[0]["limited"] is not None:
            self._limited[rows[0]["id"]] = rows[0]["limited"]
        return jobs.Job.from_row(rows[0]) if rows else None

    def limited_model(self, job_id: int) -> str | None:
        """The model whose limit the fetch of this job took capacity from (None: no limit); the
        job must then `release` it when its call ends. Forgotten once returned."""
        return self._limited.pop(job_id, None)

    async def release(self, release: Release) -> None:
        """The end of a limited call: (job id, tokens used, answer's tokens, requests made), the
        usage None when unknown (the call failed); 0 requests gives back the request taken (the
        answer came from the cache)."""
        await self._releases(release)

    async def _release_many(self, releases: list[Release]) -> list[None]:
        async with self.connector.pool.connection() as conn:
            await limits.release_calls(conn, releases, minute=get_settings().limit_minute)
        return [None] * len(releases)

    async def start_attempt(self, job_id: int, output_id: int, attempt: int) -> LLMOutput | None:
        """Start the attempt of an LLM job's output: the output, now processing for it, or None
        when the output is final, gone, or has a newer attempt running. The fetch that took the
        job may have started it already (then no statement: the row it read back is forgotten
        once returned); otherwise a statement of its own decides."""
        started = self._started.pop(job_id, None)
        if started is not None and started["id"] == output_id:
            return LLMOutput.model_validate(started)
        return await self._starts((output_id, attempt))

    def forget_fetched(self) -> None:
        """Drop what fetches left for jobs no worker ran (a worker stopped between a fetch and
        its jobs' starts): a new worker starts from the database alone."""
        self._started.clear()
        self._limited.clear()

    async def complete_output(self, answer: outputs.Answer) -> bool:
        """Store the answer of an attempt; False when its attempt is no longer the current one."""
        return await self._answers(answer)

    async def _start_many(self, pairs: list[tuple[int, int]]) -> list[LLMOutput | None]:
        async with self.connector.pool.connection() as conn:
            started = await outputs.start_attempts(conn, pairs)
        return [started.get(output_id) for output_id, _ in pairs]

    async def _complete_many(self, answers: list[outputs.Answer]) -> list[bool]:
        async with self.connector.pool.connection() as conn:
            stored = await outputs.complete_outputs(conn, answers)
        return [answer.output_id in stored for answer in answers]

    async def finish_job_by_id_async(
        self, job_id: int, status: jobs.Status, delete_job: bool
    ) -> None:
        if not fast_path():
            await super().finish_job_by_id_async(
                job_id=job_id, status=status, delete_job=delete_job
            )
            return
        await self._finishes((job_id, status.value, delete_job))

    async def _finish_one(self, finish: tuple[int, str, bool]) -> None:
        job_id, status, delete_job = finish
        await super().finish_job_by_id_async(
            job_id=job_id, status=jobs.Status(status), delete_job=delete_job
        )

    async def _finish_many(self, finishes: list[tuple[int, str, bool]]) -> list[None]:
        await self.connector.execute_query_async(
            query=queries["finish_jobs"],
            job_ids=[f[0] for f in finishes],
            statuses=[f[1] for f in finishes],
            delete_jobs=[f[2] for f in finishes],
        )
        return [None] * len(finishes)


class LLMJobsWorker(procrastinate.worker.Worker):
    """procrastinate's worker with several fetch loops sharing its slots (fetchers_for), each
    taking as many jobs as there are free slots (up to FETCH_BATCH) in one statement."""

    async def _fetch_and_process_jobs(self) -> None:
        loops = fetchers_for(self.concurrency)
        await asyncio.gather(*(self._fetch_and_start_jobs() for _ in range(loops)))

    async def _fetch_and_start_jobs(self) -> None:
        """procrastinate's fetch loop, taking every free slot at once (until no job is left or
        the worker is asked to stop)."""
        manager = self.app.job_manager
        # Ours fetches a batch per statement; any other job manager, one job at a time.
        fetch_jobs = manager.fetch_jobs if isinstance(manager, LLMJobsJobManager) else None
        while not self._stop_event.is_set():
            acquire = asyncio.create_task(self._job_semaphore.acquire())
            slots, found = 0, []
            try:
                await utils.wait_any(acquire, self._stop_event.wait())
                if acquire.done() and not acquire.cancelled():
                    slots = 1
                if self._stop_event.is_set():
                    break
                while slots < FETCH_BATCH and not self._job_semaphore.locked():
                    await self._job_semaphore.acquire()  # free: returns at once
                    slots += 1
                assert self.worker_id is not None
                # Cleared before the fetch, not after it (as procrastinate does): a job whose
                # notification comes while the fetch runs, too late for it to see the job, leaves
                # the event set, and the worker fetches again at once instead of at the next poll.
                self._new_job_event.clear()
                if fetch_jobs is None:
                    job = await self.app.job_manager.fetch_job(
                        queues=self.queues, worker_id=self.worker_id
                    )
                    found = [job] if job else []
                else:
                    found = await fetch_jobs(self.queues, self.worker_id, slots)
            finally:
                for _ in range(slots - len(found)):
                    self._job_semaphore.release()
            for job in found:  # taken (marked doing): each runs, even when a stop just came
                self._start_job(job)
            if len(found) < slots:
                break

    def _start_job(self, job: jobs.Job) -> None:
        # As procrastinate's own fetch loop starts a job it fetched.
        job_id = job.id
        context = job_context.JobContext(
            app=self.app,
            worker_name=self.worker_name,
            worker_queues=self.queues,
            additional_context=self.additional_context.copy() if self.additional_context else {},
            job=job,
            abort_reason=lambda job_id=job_id: (
                self._job_ids_to_abort.get(job_id) if job_id else None
            ),
            start_timestamp=time.time(),
        )
        job_task = asyncio.create_task(
            self._process_job(context), name=f"process job {job.task_name}[{job.id}]"
        )
        self._running_jobs[job_task] = context

        def on_job_complete(task: asyncio.Task) -> None:
            del self._running_jobs[task]
            self._job_semaphore.release()

        job_task.add_done_callback(on_job_complete)


def _freeze_what_lasts() -> None:
    """Move every object alive now (the modules litellm and the rest loaded: a few hundred
    thousand objects that live as long as the process) out of the garbage collector's sight.
    Without this, each full collection walks them all again, in long pauses under load."""
    gc.collect()
    gc.freeze()


class LLMJobsApp(procrastinate.App):
    """procrastinate's App, whose workers outlive a database outage.

    A procrastinate worker stops when it loses the database (its listener fails). Unless it was
    asked to stop (SIGINT/SIGTERM, or `wait=False`), this worker waits for the database with a
    capped backoff and starts again; jobs it had in flight are recovered as stalled jobs.
    """

    job_manager: LLMJobsJobManager

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        # Ours even with the fast paths off: its single fetch skips the paused queues, and the
        # LLM job writes its output through it; with them off, it finishes each job as
        # procrastinate does.
        self.job_manager = LLMJobsJobManager(connector=self.connector)

    def open_async(self, pool: Any = None) -> utils.AwaitableContext:
        if _run_by_procrastinate_cli():
            _start_procrastinate_cli()
        return super().open_async(pool)

    def _worker(self, **kwargs: Any) -> procrastinate.worker.Worker:
        options = {**self.worker_defaults, **kwargs}
        if not fast_path():
            return procrastinate.worker.Worker(app=self, **options)
        worker = LLMJobsWorker(app=self, **options)
        missing = missing_internals(worker)
        if missing:
            _fallback("worker", f"procrastinate's Worker has no {', '.join(missing)}")
            return procrastinate.worker.Worker(app=self, **options)
        return worker

    async def run_worker_async(self, **kwargs: Any) -> None:
        self.perform_import_paths()
        from tasks.llm.calls import (  # litellm: workers only
            install_call_executor,
            served_models,
            set_up_litellm,
        )

        set_up_litellm()
        install_call_executor(asyncio.get_running_loop())
        if fast_path():
            await _check_functions(self.connector)
        await _check_job_choice(self.connector, self.job_manager)
        served = served_models()
        _freeze_what_lasts()
        install_handlers = kwargs.pop("install_signal_handlers", True)
        wait = {**self.worker_defaults, **kwargs}.get("wait", True)
        stop_requested = asyncio.Event()
        delay = 1.0
        handlers = signals.on_stop(stop_requested.set) if install_handlers else nullcontext()
        with handlers:
            while True:
                self.job_manager.forget_fetched()
                worker = self._worker(**kwargs, install_signal_handlers=False)
                relay = asyncio.create_task(_stop_when(stop_requested, worker))
                every = worker.update_heartbeat_interval
                published = asyncio.create_task(
                    catalog.keep_published(self.connector.pool, served, every)
                )
                limited = asyncio.create_task(_limits_from_environment(self.connector, every))
                started = time.monotonic()
                try:
                    await worker.run()
                except (ConnectorException, psycopg.OperationalError) as exc:
                    if _being_cancelled():
                        raise  # cancelled mid-statement: a stop, not an outage
                    log.error("worker lost the database", error=str(exc))
                finally:
                    relay.cancel()
                    published.cancel()
                    limited.cancel()
                    with suppress(asyncio.CancelledError):
                        await published
                    with suppress(asyncio.CancelledError):
                        await limited
                if _being_cancelled():
                    # this task was cancelled and something on the way swallowed it (the
                    # worker's own shutdown, the wait above): stop, never restart
                    raise asyncio.CancelledError
                if stop_requested.is_set() or not wait:
                    return
                if time.monotonic() - started > 60:
                    delay = 1.0  # it ran fine for a while: this is a new outage
                log.warning("worker restarting after a database outage", retry_in_s=delay)
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop_requested.wait(), timeout=delay)
                if stop_requested.is_set():
                    return
                with suppress(Exception):  # drop the connections the outage broke
                    await self.connector.pool.check()
                delay = min(delay * 2, 30.0)


async def _check_functions(connector: Any) -> None:
    """Warn once when procrastinate's schema lacks a versioned function our statements call
    (the statements then fall back to procrastinate's own, one job at a time)."""
    try:
        rows = await connector.execute_query_all_async(
            query=queries["procrastinate_functions"], names=list(PROCRASTINATE_FUNCTIONS)
        )
    except (ConnectorException, psycopg.Error):  # no database yet: the worker reports it
        return
    missing = sorted(set(PROCRASTINATE_FUNCTIONS) - {row["name"] for row in rows})
    if missing:
        _fallback("sql_functions", f"the database has no {', '.join(missing)}")


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _check_job_choice(connector: Any, manager: LLMJobsJobManager) -> None:
    """Turn provider limits off, with one WARNING, when the database's procrastinate chooses
    jobs otherwise than the copy of its choice our fetch makes (see FETCH_JOB_V2_MD5)."""
    try:
        rows = await connector.execute_query_all_async(query=queries["procrastinate_fetch_body"])
    except (ConnectorException, psycopg.Error):  # no database yet: the worker reports it
        return
    found = rows[0]["md5"] if rows else None
    manager.limits_on = found == FETCH_JOB_V2_MD5
    if not manager.limits_on:
        logs.warn_once(
            log,
            "job_choice",
            "provider limits are off: procrastinate chooses jobs otherwise than the copy of its "
            "choice they use",
            procrastinate_version=procrastinate.__version__,
            procrastinate_fetch_job_v2=found,
            expected=FETCH_JOB_V2_MD5,
        )


async def _limits_from_environment(connector: Any, every: float) -> None:
    """Write LLMJOBS_MODEL_LIMITS to the database (where no admin set the pattern), trying again
    every `every` seconds until it is written (a database not reachable yet, or busy)."""
    specs = get_settings().model_limits
    rows = [(s.pattern, s.rpm, s.tpm, s.max_concurrent) for s in specs]
    while rows:
        try:
            async with connector.pool.connection() as conn:
                written = await limits.limits_from_environment_async(conn, rows)
        except psycopg.errors.UndefinedTable:
            log.warning("provider limits need `llmjobs migrate`: LLMJOBS_MODEL_LIMITS not applied")
            return
        except (ConnectorException, psycopg.OperationalError) as exc:
            log.warning("LLMJOBS_MODEL_LIMITS not applied yet", error=str(exc), retry_in_s=every)
            await asyncio.sleep(every)
            continue
        if written:
            log.info("limits from the environment", patterns=written)
        return


async def _stop_when(event: asyncio.Event, worker: Any) -> None:
    await event.wait()
    worker.stop()


def _checked_worker_defaults() -> dict[str, Any]:
    # None with a bad setting: every process that imports the app reports bad settings itself
    # when it starts (procrastinate's worker CLI when it opens the app, the llmjobs CLI, the
    # dashboard, the API).
    try:
        return _worker_defaults()
    except SettingsError:
        return {}


def _run_by_procrastinate_cli() -> bool:
    return Path(sys.argv[0]).name == "procrastinate"


def _start_procrastinate_cli() -> None:
    """The start of procrastinate's worker CLI (`procrastinate --app=tasks.app worker`), when it
    opens the app: a bad setting stops it with one line per variable (exit 2), as the llmjobs
    CLI does; otherwise its log lines, like ours, become JSON."""
    try:
        settings = get_settings()
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)


app = LLMJobsApp(
    connector=procrastinate.PsycopgConnector(pool_factory=_pool_factory),
    import_paths=["tasks.worker.job", "tasks.worker.maintenance"],
    worker_defaults=_checked_worker_defaults(),  # type: ignore[arg-type]
)
