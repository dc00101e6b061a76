"""Which models can be used: the offline ones, and those a live worker published.

Each worker publishes the models it can serve with its own credentials (names, `provider/*`
for every name of a provider it holds a key for, prices, capabilities) when it starts, and keeps
them fresh with its heartbeat (`keep_published`). The CLI, the API and the dashboard check a model
against that catalog, so they need neither the provider keys nor litellm (seconds to import).
The offline models are always accepted: any worker serves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from db import catalog as catalog_db
from db.catalog import CatalogModel
from tasks.config import OFFLINE_MODEL, get_settings, model_name_problem
from tasks.errors import InvalidInput
from tasks.logs import get_logger

log = get_logger("llmjobs.catalog")

OFFLINE_PROVIDER = "offline"
OFFLINE_MODELS = ("echo", "brief", "verbose", "flaky")
OFFLINE_NAMES = tuple(f"{OFFLINE_PROVIDER}/{m}" for m in OFFLINE_MODELS)

# Providers registered in this process only (the test helpers' stub models): served by this
# process's own worker, so they are not in the catalog.
_local_providers: set[str] = set()

# Entries of workers not seen for this long are removed by the maintenance work.
PRUNE_AFTER = 86_400.0


@dataclass(frozen=True)
class ModelInfo:
    name: str
    provider: str
    offline: bool
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None


def register_local(provider: str) -> None:
    _local_providers.add(provider)


def unregister_local(provider: str) -> None:
    _local_providers.discard(provider)


def is_local(model: str) -> bool:
    """An offline model or one of this process's own providers: costs nothing, needs no key."""
    provider = model.split("/", 1)[0]
    return provider == OFFLINE_PROVIDER or provider in _local_providers


def fresh_within() -> float:
    """How recently a worker must have been seen for its models to count (seconds)."""
    return max(60.0, 2 * get_settings().stalled_after)


def _cost(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _info(model: str, found: CatalogModel) -> ModelInfo:
    return ModelInfo(
        model,
        found.provider,
        offline=False,
        input_cost_per_token=_cost(found.input_cost_per_token),
        output_cost_per_token=_cost(found.output_cost_per_token),
    )


def check_model(conn: psycopg.Connection, model: object) -> ModelInfo:
    """The model if a worker can serve it now; InvalidInput(field="model") saying why not."""
    if problem := model_name_problem(model):
        raise InvalidInput("model", problem)
    assert isinstance(model, str)
    provider, slash, name = model.partition("/")
    if provider == OFFLINE_PROVIDER:
        if name not in OFFLINE_MODELS:
            raise InvalidInput(
                "model", f"unknown offline model {model!r} (use {', '.join(OFFLINE_NAMES)})"
            )
        return ModelInfo(
            model, provider, offline=True, input_cost_per_token=0.0, output_cost_per_token=0.0
        )
    if slash and provider in _local_providers:
        return ModelInfo(
            model, provider, offline=True, input_cost_per_token=0.0, output_cost_per_token=0.0
        )
    found = catalog_db.find(conn, model, fresh_within())
    if found is not None:
        return _info(model, found)
    running = catalog_db.live_workers(conn, fresh_within())
    start = "start one with its provider's key" if running else "no worker is running; start one"
    offline = f"(the offline models need none: {', '.join(OFFLINE_NAMES)})"
    if not slash:
        raise InvalidInput(
            "model",
            f"unknown model {model!r}, or no worker serves it: name it as litellm does "
            f"(e.g. openai/<name>); {start} {offline}",
        )
    raise InvalidInput("model", f"no worker serves {model!r}: {start} {offline}")


def _offline_infos() -> list[ModelInfo]:
    return [ModelInfo(n, OFFLINE_PROVIDER, True, 0.0, 0.0) for n in OFFLINE_NAMES]


def usable_models(pool: ConnectionPool) -> list[ModelInfo]:
    """The models to offer: the offline ones first, then those the live workers list (the
    configured default and LLMJOBS_MODELS first)."""
    with pool.connection() as conn:
        listed = catalog_db.listed(conn, fresh_within())
    settings = get_settings()
    first = [settings.default_model, *settings.extra_models]
    served = sorted(
        (m for m in listed if not m.model.endswith("/*") and not is_local(m.model)),
        key=lambda m: (
            m.model not in first,
            first.index(m.model) if m.model in first else 0,
            m.model,
        ),
    )
    # models of this process's own providers named in the settings (its own worker serves them)
    local = [
        ModelInfo(m, m.split("/", 1)[0], True, 0.0, 0.0)
        for m in dict.fromkeys(first)
        if "/" in m and m.split("/", 1)[0] in _local_providers
    ]
    return [*_offline_infos(), *local, *(_info(m.model, m) for m in served)]


def default_model(pool: ConnectionPool) -> str:
    """LLMJOBS_DEFAULT_MODEL when a worker serves it, else the offline model."""
    wanted = get_settings().default_model
    try:
        with pool.connection() as conn:
            return check_model(conn, wanted).name
    except InvalidInput:
        return OFFLINE_MODEL


def live_workers(pool: ConnectionPool) -> int:
    """Workers that published their models lately."""
    with pool.connection() as conn:
        return catalog_db.live_workers(conn, fresh_within())


def worker_name() -> str:
    """This process's name in the catalog: host, process id and a token (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def keep_published(
    pool: AsyncConnectionPool, models: Sequence[CatalogModel], every: float
) -> None:
    """A worker's side: publish its models, mark them seen every `every` seconds (publish them
    again if their entry was pruned), withdraw them when cancelled (the worker stops). A
    database that cannot be reached is logged and tried again at the next beat; the worker's
    own loop deals with outages."""
    name, host = worker_name(), socket.gethostname()
    published = failing = False
    try:
        while True:
            try:
                async with pool.connection() as conn:
                    if not published or not await catalog_db.touch(conn, name):
                        await catalog_db.publish(conn, name, host, models)
                        if not published:
                            log.info("models published", worker=name, models=len(models))
                        published = True
            except (psycopg.Error, OSError, TimeoutError) as exc:
                # said once per outage; the next beat tries again
                (log.debug if failing else log.warning)(
                    "models not published", worker=name, error=str(exc)
                )
                failing = True
            else:
                failing = False
            await asyncio.sleep(every)
    finally:
        if published:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    async with pool.connection() as conn:
                        await catalog_db.withdraw(conn, name)


async def prune(pool: AsyncConnectionPool) -> int:
    """Remove the entries of workers long gone (killed workers never withdraw theirs)."""
    async with pool.connection() as conn:
        return await catalog_db.prune(conn, PRUNE_AFTER)


def prices(conn: psycopg.Connection, model: str) -> tuple[float, float] | None:
    """Dollars per input and output token of model, as a live worker published them; 0 for the
    offline and local models; None when unknown."""
    if is_local(model):
        return (0.0, 0.0)
    found = catalog_db.find(conn, model, fresh_within())
    if found is None or found.input_cost_per_token is None or found.output_cost_per_token is None:
        return None
    return float(found.input_cost_per_token), float(found.output_cost_per_token)
