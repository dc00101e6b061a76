"""The FastAPI application: `create_app()` is the factory `llmjobs api` serves.

Nothing connects at import: the connection pool is opened when the app starts (lifespan),
kept on `app.state.pool`, and closed when it stops.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors
from api.access_log import AccessLog
from api.body_limit import BodyLimit
from api.idempotency import rate_limit_from_env
from api.judges import router as judges_router
from api.reviews import router as reviews_router
from api.routes import health_router, router
from db.pool import sync_pool
from tasks.config import database_url

MAX_BODY_BYTES = 256 * 1024
POOL_SIZE = 10

DESCRIPTION = """
Queue LLM jobs and read their outputs.

Every `/api` route needs `Authorization: Bearer <token>` (create one with
`llmjobs tokens create <user>`). You see your own outputs; admins see everyone's, and set
the provider limits per model that every worker keeps to (`/api/v1/limits`).

Errors are JSON: `422` gives `{"detail": [{"field": ..., "message": ...}]}`, every other error
`{"detail": "<message>"}`. Job creation is rate limited per user (`429` with `Retry-After`) and
accepts an `Idempotency-Key` header.
"""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool = sync_pool(database_url(), max_size=POOL_SIZE)
    app.state.pool = pool
    try:
        yield
    finally:
        pool.close()


def create_app() -> FastAPI:
    """The API, configured from the environment (DATABASE_URL, LLMJOBS_API_RATE_LIMIT).

    Raises ValueError on a malformed LLMJOBS_API_RATE_LIMIT.
    """
    app = FastAPI(
        title="LLM Jobs",
        version="1",
        description=DESCRIPTION,
        lifespan=_lifespan,
    )
    app.state.rate_limit = rate_limit_from_env()
    app.include_router(router)
    app.include_router(judges_router)
    app.include_router(reviews_router)
    app.include_router(health_router)
    errors.install(app)
    # Added last, so outermost: the access log sees every answer, 413s included.
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(AccessLog)
    # AccessLog writes one line per request; uvicorn's own access line would repeat it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    return app
