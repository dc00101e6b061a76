"""Batches of jobs, the response cache's look-ups, and dataset exports."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from db.models import Row
from db.queries import json_or_null, queries


class Batch(Row):
    id: int
    user_id: int
    name: str
    template: str
    model: str
    format: str
    queue: str
    columns: list[str]
    skipped: list[Any]
    created_at: datetime
    cancelled_at: datetime | None = None
    # the JSON Schema of every row's answer
    json_schema: dict[str, Any] | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    unfinished: int = 0
    cost: Decimal = Decimal(0)


class BatchResult(Row):
    id: int
    batch_row: int
    context: dict[str, Any]
    status: str
    parsed_output: Any = None
    raw_response: str | None = None
    error_message: str | None = None
    feedback: str
    cost: Decimal | None = None
    latency_ms: int | None = None
    cache_hit_of: int | None = None


def insert_batch(
    conn: psycopg.Connection,
    *,
    user_id: int,
    name: str,
    template: str,
    model: str,
    format: str,
    queue: str,
    columns: list[str],
    skipped: list[Any],
    json_schema: dict[str, Any] | None = None,
) -> Batch:
    params = {
        "user_id": user_id,
        "name": name,
        "template": template,
        "model": model,
        "format": format,
        "queue": queue,
        "columns": Jsonb(columns),
        "skipped": Jsonb(skipped),
        "json_schema": json_or_null(json_schema),
    }
    return Batch.model_validate(conn.execute(queries["insert_batch"], params).fetchone())


def set_batch_rows(
    conn: psycopg.Connection, batch_id: int, ids: list[int], rows: list[int]
) -> None:
    conn.execute(queries["set_batch_rows"], {"batch_id": batch_id, "ids": ids, "rows": rows})


def get_batch(
    conn: psycopg.Connection, batch_id: int, *, viewer_id: int | None = None
) -> Batch | None:
    found = conn.execute(queries["get_batch"], {"id": batch_id, "viewer_id": viewer_id}).fetchone()
    return Batch.model_validate(found) if found else None


def list_batches(conn: psycopg.Connection, *, user_id: int | None, limit: int = 50) -> list[Batch]:
    rows = conn.execute(queries["list_batches"], {"user_id": user_id, "limit": limit})
    return [Batch.model_validate(r) for r in rows]


def batch_results(
    conn: psycopg.Connection, batch_id: int, *, after_row: int = 0, limit: int = 1000
) -> list[BatchResult]:
    params = {"batch_id": batch_id, "after_row": after_row, "limit": limit}
    return [BatchResult.model_validate(r) for r in conn.execute(queries["batch_results"], params)]


def cancel_batch_jobs(conn: psycopg.Connection, batch_id: int, *, message: str) -> list[int]:
    rows = conn.execute(queries["cancel_batch_jobs"], {"batch_id": batch_id, "message": message})
    return [r["id"] for r in rows]


def batch_failed_outputs(conn: psycopg.Connection, batch_id: int) -> list[dict[str, Any]]:
    return list(conn.execute(queries["batch_failed_outputs"], {"batch_id": batch_id}))


def requeue_outputs(conn: psycopg.Connection, ids: list[int]) -> None:
    conn.execute(queries["requeue_outputs"], {"ids": ids})


def clear_batch_cancelled(conn: psycopg.Connection, batch_id: int) -> None:
    conn.execute(queries["clear_batch_cancelled"], {"batch_id": batch_id})


def export_outputs(
    conn: psycopg.Connection, *, after_id: int = 0, limit: int = 1000, **filters: Any
) -> list[dict[str, Any]]:
    """A page (ids above after_id) of completed outputs matching the filters, oldest first,
    with their feedback's reasons, comment and corrected answer, and their judges' verdicts
    (`judge_verdicts`: [{"judge", "verdict", "reason"}], by judge name). `or_corrected` keeps
    the outputs with a corrected answer whatever their feedback."""
    params = {
        "user_id": None,
        "model": None,
        "format": None,
        "feedback": None,
        "or_corrected": False,
        "template": None,
        "created_after": None,
        "created_before": None,
        **filters,
        "after_id": after_id,
        "limit": limit,
    }
    return list(conn.execute(queries["export_outputs"], params))


def cache_hit_rate(
    conn: psycopg.Connection,
    *,
    user_id: int | None,
    model: str | None = None,
    template: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> dict[str, int]:
    params = {
        "user_id": user_id,
        "model": model,
        "template": template,
        "created_after": created_after,
        "created_before": created_before,
    }
    return dict(conn.execute(queries["cache_hit_rate"], params).fetchone())


# The worker's side of the cache.


async def find_cached_answer(
    conn: psycopg.AsyncConnection,
    *,
    cache_key: str,
    window_seconds: float,
    output_id: int,
    user_id: int,
) -> dict[str, Any] | None:
    params = {
        "cache_key": cache_key,
        "window_seconds": window_seconds,
        "id": output_id,
        "user_id": user_id,
    }
    cur = await conn.execute(queries["find_cached_answer"], params)
    return await cur.fetchone()


async def complete_from_cache(
    conn: psycopg.AsyncConnection,
    output_id: int,
    *,
    attempt: int,
    prompt: str,
    cached: dict[str, Any],
    cache_key: str,
    latency_ms: int,
) -> bool:
    params = {
        "id": output_id,
        "attempt": attempt,
        "prompt": prompt,
        "raw_response": cached["raw_response"],
        "parsed_output": Jsonb(cached["parsed_output"]),
        "cache_key": cache_key,
        "cache_hit_of": cached["id"],
        "latency_ms": latency_ms,
    }
    cur = await conn.execute(queries["complete_from_cache"], params)
    return await cur.fetchone() is not None
