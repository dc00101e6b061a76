"""Shared fixtures: a real PostgreSQL per test (cloned from a migrated template), pools, the
procrastinate app opened on it, an in-process worker, and a scripted OpenAI-compatible server.

The server is TEST_DATABASE_URL when set (CI points it at the local server), otherwise the
embedded PostgreSQL in `.data/test-pg`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
# Retry waits scaled down so retry tests take milliseconds; the formula itself is unchanged.
os.environ.setdefault("LLMJOBS_RETRY_SCALE", "0.002")
os.environ.setdefault("LLMJOBS_POLL_INTERVAL", "0.05")
os.environ.setdefault("LLMJOBS_MODEL_TIMEOUT", "5")
for _name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_BASE", "OPENAI_BASE_URL"):
    os.environ.pop(_name, None)

import psycopg
import pytest
import structlog
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from db import embedded
from db.migrate import apply
from db.models import User
from db.pool import sync_pool
from tasks import accounts
from tasks.config import data_dir, get_settings
from tests.support.provider import ScriptedProvider

get_settings.cache_clear()
ROOT = Path(__file__).resolve().parent.parent


class SettingsMonkeyPatch(pytest.MonkeyPatch):
    """pytest's MonkeyPatch, whose changes to the environment (and their undoing) the settings
    see at once: they are read again at the next get_settings()."""

    def setenv(self, name: str, value: str, prepend: str | None = None) -> None:
        super().setenv(name, value, prepend)
        get_settings.cache_clear()

    def delenv(self, name: str, raising: bool = True) -> None:
        super().delenv(name, raising)
        get_settings.cache_clear()

    def undo(self) -> None:
        super().undo()
        get_settings.cache_clear()


@pytest.fixture
def monkeypatch() -> Iterator[pytest.MonkeyPatch]:
    patch = SettingsMonkeyPatch()
    yield patch
    patch.undo()


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """Every test leaves logging as it found it: code run in-process (the command, `make run`'s
    runner, a worker's start) configures it to write to the stderr pytest captured for that test,
    a stream closed when the test ends."""
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def _server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if url:
        return url
    return embedded.start(data_dir(), data_dir() / "test-pg")


def _with_dbname(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A fresh folder for an embedded server's data, inside the project's `.data/`: the server
    runs as another system user, who must traverse every parent folder, and pytest keeps its own
    temporary folders private to root."""
    folder = data_dir() / "tests" / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def server_url() -> str:
    return _server_url()


class Databases:
    """Databases cloned from the template ahead of the tests that take them, and dropped after
    them, by a thread of their own: a test waits for neither the copy nor the drop (the server's
    writes of a copy take longer than most tests)."""

    READY = 2

    def __init__(self, server_url: str, template: str):
        self.server_url, self.template = server_url, template
        self.ready: queue.Queue[str] = queue.Queue()
        self.done: queue.Queue[str | None] = queue.Queue()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="test-databases", daemon=True)
        self.thread.start()

    def take(self) -> str:
        """A fresh migrated database's name (waits for one to be ready)."""
        while True:
            if self.failure is not None:
                raise RuntimeError("the test databases could not be made") from self.failure
            with contextlib.suppress(queue.Empty):
                return self.ready.get(timeout=1)

    def give_back(self, name: str) -> None:
        """A database a test is done with: it is dropped."""
        self.done.put(name)

    def close(self) -> None:
        self.done.put(None)
        self.thread.join(timeout=120)
        with psycopg.connect(self.server_url, autocommit=True) as admin:
            while not self.ready.empty():
                _drop(admin, self.ready.get())

    def _run(self) -> None:
        try:
            with psycopg.connect(self.server_url, autocommit=True) as admin:
                while True:
                    try:
                        name = self.done.get(timeout=0.02)
                    except queue.Empty:
                        if self.ready.qsize() < self.READY:
                            self.ready.put(self._copy(admin))
                        continue
                    if name is None:
                        return
                    _drop(admin, name)
        except BaseException as exc:  # told to the next test that asks
            self.failure = exc

    def _copy(self, admin: psycopg.Connection) -> str:
        name = f"llmjobs_t_{uuid.uuid4().hex[:10]}"
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(self.template)
            )
        )
        return name


def _drop(admin: psycopg.Connection, name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    """A database migrated once per run; each test clones it."""
    name = f"llmjobs_tpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _with_dbname(server_url, name)
    with psycopg.connect(url) as conn:
        conn.row_factory = psycopg.rows.dict_row
        apply(conn)
    yield name
    with psycopg.connect(server_url, autocommit=True) as admin:
        _drop(admin, name)


@pytest.fixture(scope="session")
def databases(server_url: str, template_db: str) -> Iterator[Databases]:
    made = Databases(server_url, template_db)
    yield made
    made.close()


@pytest.fixture
def database_url(
    server_url: str, databases: Databases, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh migrated database for this test; DATABASE_URL points at it."""
    name = databases.take()
    url = _with_dbname(server_url, name)
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    databases.give_back(name)


@pytest.fixture
def pool(database_url: str):
    p = sync_pool(database_url, max_size=4)
    yield p
    p.close()


@pytest.fixture
def analyst(pool) -> User:
    return accounts.create_user(pool, "ana")


@pytest.fixture
def other_analyst(pool) -> User:
    return accounts.create_user(pool, "otto")


@pytest.fixture
def admin(pool) -> User:
    return accounts.create_user(pool, "root-admin", admin=True)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set LLMJOBS_* variables for this test: settings_env(MAX_RETRIES="2")."""

    def set_env(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(f"LLMJOBS_{key}", value)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()


@pytest.fixture
async def opened_app(database_url: str) -> AsyncIterator:
    """The project's procrastinate app, opened on this test's database."""
    from tasks.worker.app import app

    async with app.open_async():
        yield app


def publish_catalog(database_url: str) -> None:
    """Publish what this process's worker serves to the model catalog, as a worker does when it
    starts: front ends then accept the models its environment configures."""
    from tasks.testing import publish_served_models

    with sync_pool(database_url, max_size=1) as catalog_pool:
        publish_served_models(catalog_pool)


@pytest.fixture
def catalog_of_this_process(database_url: str) -> Callable[[], None]:
    """publish(): (re)publish this process's models, after the test changed its environment."""
    return lambda: publish_catalog(database_url)


@pytest.fixture
def provider(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[ScriptedProvider]:
    """A scripted OpenAI-compatible server; models named openai/<anything> reach it, and in the
    test's database (when it uses one) a worker serving them is in the model catalog."""
    server = ScriptedProvider().start()
    monkeypatch.setenv("OPENAI_API_BASE", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key-0123456789")
    if "database_url" in request.fixturenames:
        publish_catalog(request.getfixturevalue("database_url"))
    yield server
    server.stop()


@pytest.fixture
def run_worker(opened_app, pool) -> Callable:
    """run_worker(until=callable, timeout=s): run an in-process worker until `until()` is true
    (default: no output pending or processing), then stop it."""
    from db import outputs as outputs_db

    def all_final() -> bool:
        with pool.connection() as conn:
            rows = outputs_db.list_outputs(conn, limit=500)
        return all(o.status in ("completed", "failed") for o in rows)

    async def run(until: Callable[[], bool] | None = None, timeout: float = 30.0, **options):
        settings = get_settings()
        worker_options = {
            "concurrency": 4,
            "fetch_job_polling_interval": settings.poll_interval,
            "install_signal_handlers": False,
            "wait": True,
            "delete_jobs": "never",
            "update_heartbeat_interval": 0.5,
            **options,
        }
        task = asyncio.create_task(opened_app.run_worker_async(**worker_options))
        check = until or all_final

        def registered() -> bool:
            with pool.connection() as conn:
                return conn.execute("SELECT 1 FROM procrastinate_workers").fetchone() is not None

        try:
            async with asyncio.timeout(timeout):
                # the worker has started (and registered) before its test may stop it
                while not task.done() and not await asyncio.to_thread(registered):
                    await asyncio.sleep(0.05)
                while True:
                    await asyncio.sleep(0.05)
                    if task.done():
                        task.result()
                        return
                    if await asyncio.to_thread(check):
                        return
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run


@pytest.fixture
def renders(monkeypatch) -> list[int]:
    """Counts the renders: one item per call of rendering.render."""
    calls: list[int] = []
    from tasks.llm import rendering

    real = rendering.render

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(rendering, "render", counted)
    return calls
