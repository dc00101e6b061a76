"""Fixtures of the HTTP API tests: a TestClient on the app (lifespan run, so its pool is open on
this test's database), tokens for the standard users, and helpers to read what was queued."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from db import outputs as outputs_db
from db.models import User
from tasks import accounts
from tasks.logs import configure_logging

EXAMPLE_JOB = {
    "template": "Explain {{concept}} to a beginner",
    "context": {"concept": "recursion"},
    "model": "offline/echo",
    "format": "markdown",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def open_client(database_url: str) -> Iterator[Callable[[], TestClient]]:
    """open_client(): a new started app (its own pool, settings read now) on the test database."""
    clients: list[TestClient] = []

    def open_one() -> TestClient:
        client = TestClient(create_app(), raise_server_exceptions=True)
        client.__enter__()
        clients.append(client)
        return client

    yield open_one
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(open_client) -> TestClient:
    return open_client()


@pytest.fixture
def token_of(pool) -> Callable[[User], str]:
    return lambda user: accounts.create_token(pool, user.name)


@pytest.fixture
def ana(analyst, token_of) -> dict[str, str]:
    """Authorization headers of the analyst ana."""
    return bearer(token_of(analyst))


@pytest.fixture
def otto(other_analyst, token_of) -> dict[str, str]:
    return bearer(token_of(other_analyst))


@pytest.fixture
def root(admin, token_of) -> dict[str, str]:
    return bearer(token_of(admin))


@pytest.fixture
def queued_jobs(pool) -> Callable[[], list[dict[str, Any]]]:
    """queued_jobs(): every LLM job in procrastinate_jobs, with its output's fields."""

    def read() -> list[dict[str, Any]]:
        with pool.connection() as conn:
            return outputs_db.llm_jobs_since(conn, 0)

    return read


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """log_lines(): the JSON log lines written since the test began."""
    stream = io.StringIO()
    root_logger = logging.getLogger()
    saved = (root_logger.handlers[:], root_logger.level)
    configure_logging("INFO", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    root_logger.handlers[:] = saved[0]
    root_logger.setLevel(saved[1])
