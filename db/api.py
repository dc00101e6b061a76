"""The HTTP API's tables: the per-user rate-limit window and idempotency keys, plus the schema
check behind /healthz."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from db.models import Row
from db.queries import queries


class IdempotencyKey(Row):
    user_id: int
    key: str
    request_hash: str
    status_code: int | None = None
    response: Any = None
    created_at: datetime


def hit_rate_limit(
    conn: psycopg.Connection, user_id: int, *, limit: int, window_seconds: int
) -> bool:
    """Count one request in the user's current window; False (nothing counted) when it is full.

    The user's row stays locked until the transaction ends, so concurrent requests of one user
    are counted one after the other.
    """
    params = {"user_id": user_id, "limit": limit, "window_seconds": window_seconds}
    return conn.execute(queries["hit_rate_limit"], params).fetchone() is not None


def rate_limit_retry_after(conn: psycopg.Connection, user_id: int, *, window_seconds: int) -> int:
    """Whole seconds until the user's current window ends (at least 1)."""
    params = {"user_id": user_id, "window_seconds": window_seconds}
    row = conn.execute(queries["rate_limit_retry_after"], params).fetchone()
    return row["seconds"] if row else 1


def claim_idempotency_key(
    conn: psycopg.Connection, user_id: int, key: str, *, request_hash: str, ttl_seconds: int
) -> bool:
    """Reserve key for this request; False when it exists and is younger than ttl_seconds (an
    older one is taken over). Forgets the user's other keys older than ttl_seconds.

    A key reserved by a transaction still open makes this wait until that transaction ends:
    then True if it rolled back, False if it committed.
    """
    params = {
        "user_id": user_id,
        "key": key,
        "request_hash": request_hash,
        "ttl_seconds": ttl_seconds,
    }
    return conn.execute(queries["claim_idempotency_key"], params).fetchone() is not None


def get_idempotency_key(conn: psycopg.Connection, user_id: int, key: str) -> IdempotencyKey | None:
    row = conn.execute(queries["get_idempotency_key"], {"user_id": user_id, "key": key}).fetchone()
    return IdempotencyKey.model_validate(row) if row else None


def store_idempotent_response(
    conn: psycopg.Connection, user_id: int, key: str, *, status_code: int, response: Any
) -> None:
    params = {
        "user_id": user_id,
        "key": key,
        "status_code": status_code,
        "response": Jsonb(response),
    }
    conn.execute(queries["store_idempotent_response"], params)


def health(conn: psycopg.Connection) -> dict[str, bool]:
    """{"database": our tables exist, "queue": procrastinate's job table exists}."""
    row = conn.execute(queries["api_health"]).fetchone()
    return {"database": bool(row["database"]), "queue": bool(row["queue"])}
