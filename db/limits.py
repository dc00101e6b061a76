"""Provider limits per model: the limits (llmjobs_model_limits) and what they let through
(buckets, calls, 429s). The workers' fetch takes capacity in SQL (migration 0017); this module
reads and writes the rest."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from db.models import Row
from db.queries import queries


class ModelLimit(Row):
    pattern: str
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    source: str
    updated_by: str
    updated_at: datetime


class LimitUse(Row):
    """A limited (or 429-paused) model's use; `model` is None for a limit no model used yet."""

    model: str | None = None
    pattern: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    source: str | None = None
    requests_last_minute: int
    tokens_last_minute: int
    in_flight: int
    waiting: int
    rate_limited_last_hour: int
    paused_until: datetime | None = None
    blocked: str | None = None


class ModelWait(Row):
    """Why calls to a model wait now (None: they start), and the limit it takes."""

    blocked: str | None = None
    pattern: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    typical_completion: int | None = None
    tokens_per_call: float | None = None  # the last hour's calls, used or else estimated
    paused_until: datetime | None = None


def list_limits(conn: psycopg.Connection) -> list[ModelLimit]:
    return [ModelLimit.model_validate(r) for r in conn.execute(queries["limits_list"])]


def set_limit(
    conn: psycopg.Connection,
    pattern: str,
    *,
    rpm: int | None,
    tpm: int | None,
    max_concurrent: int | None,
    updated_by: str,
) -> ModelLimit:
    row = conn.execute(
        queries["limit_set"],
        {
            "pattern": pattern,
            "rpm": rpm,
            "tpm": tpm,
            "max_concurrent": max_concurrent,
            "updated_by": updated_by,
        },
    ).fetchone()
    assert row is not None
    return ModelLimit.model_validate(row)


def clear_limit(conn: psycopg.Connection, pattern: str) -> bool:
    return conn.execute(queries["limit_clear"], {"pattern": pattern}).fetchone() is not None


Limit = tuple[str, int | None, int | None, int | None]  # pattern, rpm, tpm, max_concurrent


def _environment(limits: list[Limit]) -> dict[str, list[Any]]:
    return {
        "patterns": [limit[0] for limit in limits],
        "rpms": [limit[1] for limit in limits],
        "tpms": [limit[2] for limit in limits],
        "concurrents": [limit[3] for limit in limits],
    }


async def limits_from_environment_async(
    conn: psycopg.AsyncConnection, limits: list[Limit]
) -> list[str]:
    cursor = await conn.execute(queries["limits_from_environment"], _environment(limits))
    return [r["pattern"] for r in await cursor.fetchall()]


def limits_use(conn: psycopg.Connection, *, minute: float, stalled: float) -> list[LimitUse]:
    rows = conn.execute(queries["limits_use"], {"minute": minute, "stalled": stalled})
    return [LimitUse.model_validate(r) for r in rows]


def model_wait(conn: psycopg.Connection, model: str, *, minute: float, stalled: float) -> ModelWait:
    row = conn.execute(
        queries["model_wait"], {"model": model, "minute": minute, "stalled": stalled}
    ).fetchone()
    return ModelWait.model_validate(row or {})


def batch_waiting(conn: psycopg.Connection, batch_id: int) -> int:
    row = conn.execute(queries["batch_waiting"], {"batch_id": batch_id}).fetchone()
    return int(row["waiting"]) if row else 0


async def pause_model(conn: psycopg.AsyncConnection, model: str, seconds: float) -> datetime:
    cursor = await conn.execute(queries["model_pause"], {"model": model, "seconds": seconds})
    row: Any = await cursor.fetchone()
    return row["paused_until"]


async def release_calls(
    conn: psycopg.AsyncConnection,
    releases: list[tuple[int, int | None, int | None, int]],
    *,
    minute: float,
) -> None:
    """End limited calls: (job id, tokens used, completion tokens, requests made)."""
    await conn.execute(
        queries["release_calls"],
        {
            "job_ids": [r[0] for r in releases],
            "tokens": [r[1] for r in releases],
            "completions": [r[2] for r in releases],
            "requests": [r[3] for r in releases],
            "minute": minute,
        },
    )


async def prune(conn: psycopg.AsyncConnection) -> int:
    cursor = await conn.execute(queries["limits_prune"])
    row: Any = await cursor.fetchone()
    return int(row["deleted"]) if row else 0
