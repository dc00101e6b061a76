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
from procrastinate import signals
from procrastinate.exceptions import ConnectorException
from psycopg_pool import AsyncConnectionPool

from db.pool import async_pool_kwargs
from tasks.config import get_settings
from tasks.logs import configure_logging, get_logger

log = get_logger("llmjobs.worker")


async def _autocommit(conn: psycopg.AsyncConnection) -> None:
    await conn.set_autocommit(True)


def _pool_factory(**kwargs: Any) -> AsyncConnectionPool:
    """The worker's pool. Every statement the worker runs stands alone (procrastinate's calls
    and the job's reads and writes), so connections are in autocommit: no COMMIT round trip
    after each. procrastinate asks for a check at every checkout, another round trip per query;
    it is dropped, and the worker checks the whole pool after a database outage instead."""
    settings = get_settings()
    options = async_pool_kwargs(max_size=max(4, settings.worker_concurrency + 2))
    return AsyncConnectionPool(
        **{**options, **kwargs, "check": None, "configure": _autocommit, "open": False}
    )


def _worker_defaults() -> dict[str, Any]:
    from tasks.middleware import final_failure

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

    procrastinate fetches one job per round trip, one fetch at a time. While the worker's event
    loop is busy with model calls, each fetch also waits its turn on the loop, so one fetch loop
    cannot keep a few hundred slots filled with calls lasting a second or less."""
    configured = get_settings().worker_fetchers
    return configured if configured else max(1, min(8, concurrency // 25))


class LLMJobsWorker(procrastinate.worker.Worker):
    """procrastinate's worker with several fetch loops sharing its slots (fetchers_for)."""

    async def _fetch_and_process_jobs(self) -> None:
        fetch = super()._fetch_and_process_jobs
        await asyncio.gather(*(fetch() for _ in range(fetchers_for(self.concurrency))))


def _freeze_what_lasts() -> None:
    """Move every object alive now (the modules litellm and the rest loaded: a few hundred
    thousand objects that live as long as the process) out of the garbage collector's sight.
    Without this, each full collection walks them all again: under load, about a twelfth of
    a worker's CPU, in pauses of up to a fifth of a second."""
    gc.collect()
    gc.freeze()


class LLMJobsApp(procrastinate.App):
    """procrastinate's App, whose workers outlive a database outage.

    A procrastinate worker stops when it loses the database (its listener fails). Unless it was
    asked to stop (SIGINT/SIGTERM, or `wait=False`), this worker waits for the database with a
    capped backoff and starts again; jobs it had in flight are recovered as stalled jobs.
    """

    def _worker(self, **kwargs: Any) -> procrastinate.worker.Worker:
        return LLMJobsWorker(app=self, **{**self.worker_defaults, **kwargs})

    async def run_worker_async(self, **kwargs: Any) -> None:
        self.perform_import_paths()
        from tasks.models import install_call_executor  # litellm loads with the worker only

        install_call_executor(asyncio.get_running_loop())
        _freeze_what_lasts()
        install_handlers = kwargs.pop("install_signal_handlers", True)
        wait = {**self.worker_defaults, **kwargs}.get("wait", True)
        stop_requested = asyncio.Event()
        delay = 1.0
        handlers = signals.on_stop(stop_requested.set) if install_handlers else nullcontext()
        with handlers:
            while True:
                worker = self._worker(**kwargs, install_signal_handlers=False)
                relay = asyncio.create_task(_stop_when(stop_requested, worker))
                started = time.monotonic()
                try:
                    await worker.run()
                except (ConnectorException, psycopg.OperationalError) as exc:
                    log.error("worker lost the database", error=str(exc))
                finally:
                    relay.cancel()
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


async def _stop_when(event: asyncio.Event, worker: Any) -> None:
    await event.wait()
    worker.stop()


app = LLMJobsApp(
    connector=procrastinate.PsycopgConnector(pool_factory=_pool_factory),
    import_paths=["tasks.job", "tasks.maintenance"],
    worker_defaults=_worker_defaults(),  # type: ignore[arg-type]
)

if Path(sys.argv[0]).name == "procrastinate":
    # Loaded by the worker CLI: its log lines, like ours, become JSON.
    configure_logging(get_settings().log_level)
