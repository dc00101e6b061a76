"""The health check behind GET /api/v1/health."""

from __future__ import annotations

import psycopg
from psycopg_pool import ConnectionPool

from db import api as api_db
from tasks.logs import get_logger

log = get_logger("llmjobs.api")

HEALTH_TIMEOUT_SECONDS = 2.0


def check(pool: ConnectionPool, *, timeout: float = HEALTH_TIMEOUT_SECONDS) -> dict[str, bool]:
    """{"database": reachable and migrated, "queue": procrastinate's schema present}; both
    False when no connection comes within timeout seconds. Never raises a database error."""
    try:
        with pool.connection(timeout=timeout) as conn:
            return api_db.health(conn)
    except psycopg.Error as exc:  # PoolTimeout included: the database is down or saturated
        log.warning("health check failed", error=f"{type(exc).__name__}: {exc}")
        return {"database": False, "queue": False}
