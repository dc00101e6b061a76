"""The procrastinate App: connector, queues and worker defaults.

No connection is made at import: the database URL is resolved when the app is opened (by the
worker CLI or by `open_app`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import procrastinate
from psycopg_pool import AsyncConnectionPool

from db.pool import async_pool_kwargs
from tasks.config import get_settings
from tasks.logs import configure_logging


def _pool_factory(**kwargs: Any) -> AsyncConnectionPool:
    settings = get_settings()
    options = async_pool_kwargs(max_size=max(4, settings.worker_concurrency + 2))
    return AsyncConnectionPool(**{**options, **kwargs, "open": False})


def _worker_defaults() -> dict[str, Any]:
    from tasks.middleware import final_failure

    settings = get_settings()
    return {
        "concurrency": settings.worker_concurrency,
        "fetch_job_polling_interval": settings.poll_interval,
        "update_heartbeat_interval": settings.heartbeat_interval,
        "stalled_worker_timeout": settings.stalled_after,
        "shutdown_graceful_timeout": 30.0,
        "delete_jobs": "never",
        "worker_middleware": [final_failure],
    }


app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(pool_factory=_pool_factory),
    import_paths=["tasks.job", "tasks.maintenance"],
    worker_defaults=_worker_defaults(),  # type: ignore[arg-type]
)

if Path(sys.argv[0]).name == "procrastinate":
    # Loaded by the worker CLI: its log lines, like ours, become JSON.
    configure_logging(get_settings().log_level)
