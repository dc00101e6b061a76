"""The model catalog: the models each worker can serve, as it published them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import psycopg

from db.models import Row
from db.queries import queries


class CatalogModel(Row):
    model: str
    provider: str
    listed: bool
    input_cost_per_token: Decimal | None = None
    output_cost_per_token: Decimal | None = None
    capabilities: dict[str, Any] = {}


def _models_params(worker: str, models: Sequence[CatalogModel]) -> dict[str, Any]:
    return {
        "worker": worker,
        "models": [m.model for m in models],
        "providers": [m.provider for m in models],
        "listed": [m.listed for m in models],
        "input_costs": [m.input_cost_per_token for m in models],
        "output_costs": [m.output_cost_per_token for m in models],
        "capabilities": [json.dumps(m.capabilities) for m in models],
    }


async def publish(
    conn: psycopg.AsyncConnection, worker: str, host: str, models: Sequence[CatalogModel]
) -> None:
    """Replace the worker's entry and its models (one transaction)."""
    async with conn.transaction():
        await conn.execute(queries["catalog_publish_worker"], {"worker": worker, "host": host})
        await conn.execute(queries["catalog_clear_models"], {"worker": worker})
        await conn.execute(queries["catalog_insert_models"], _models_params(worker, models))


def publish_sync(
    conn: psycopg.Connection, worker: str, host: str, models: Sequence[CatalogModel]
) -> None:
    """publish, for a synchronous connection."""
    with conn.transaction():
        conn.execute(queries["catalog_publish_worker"], {"worker": worker, "host": host})
        conn.execute(queries["catalog_clear_models"], {"worker": worker})
        conn.execute(queries["catalog_insert_models"], _models_params(worker, models))


async def touch(conn: psycopg.AsyncConnection, worker: str) -> bool:
    """Mark the worker seen; False when its entry is gone (pruned) and must be published."""
    cursor = await conn.execute(queries["catalog_touch"], {"worker": worker})
    return await cursor.fetchone() is not None


async def withdraw(conn: psycopg.AsyncConnection, worker: str) -> None:
    await conn.execute(queries["catalog_withdraw"], {"worker": worker})


async def prune(conn: psycopg.AsyncConnection, older_than: float) -> int:
    """Remove the entries of workers not seen for older_than seconds; returns how many."""
    cursor = await conn.execute(queries["catalog_prune"], {"older_than": older_than})
    return cursor.rowcount


def find(conn: psycopg.Connection, model: str, fresh: float) -> CatalogModel | None:
    """How a worker seen within `fresh` seconds serves model (by name, else its provider's
    wildcard), or None."""
    provider = model.split("/", 1)[0] if "/" in model else ""
    params = {"model": model, "wildcard": f"{provider}/*" if provider else model, "fresh": fresh}
    row = conn.execute(queries["catalog_find"], params).fetchone()
    return CatalogModel.model_validate(row) if row else None


def listed(conn: psycopg.Connection, fresh: float) -> list[CatalogModel]:
    rows = conn.execute(queries["catalog_listed"], {"fresh": fresh})
    return [CatalogModel.model_validate(r) for r in rows]


def live_workers(conn: psycopg.Connection, fresh: float) -> int:
    return conn.execute(queries["catalog_live_workers"], {"fresh": fresh}).fetchone()["n"]
