"""PostgreSQL restarts while a worker runs: the worker carries on without a restart of its own,
and no job is lost. The test owns the server it restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from db.pool import sync_pool
from tasks import accounts
from tasks import outputs as jobs
from tasks.testing import publish_served_models
from tests.support.pgserver import OwnedServer
from tests.support.provider import ok

PROCRASTINATE = Path(sys.executable).parent / "procrastinate"


@pytest.fixture
def owned_server(server_dir, monkeypatch):
    server = OwnedServer(server_dir / "pg")
    server.migrate()
    monkeypatch.setenv("DATABASE_URL", server.url)
    yield server
    server.stop()


@pytest.mark.slow
def test_worker_survives_database_restart(owned_server, provider):
    provider.default = ok("answer", delay=0.3)
    pool = sync_pool(owned_server.url, max_size=2)
    publish_served_models(pool)  # its jobs are queued as the worker starts
    user = accounts.create_user(pool, "ana")
    worker = subprocess.Popen(
        [str(PROCRASTINATE), "--app=tasks.app", "worker"],
        env={
            **os.environ,
            "LLMJOBS_HEARTBEAT_INTERVAL": "0.5",
            "LLMJOBS_STALLED_AFTER": "2",
            "LLMJOBS_POLL_INTERVAL": "0.2",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        before = [
            jobs.submit(pool, user=user, template="a {{n}}", context={"n": i}, model="openai/m")
            for i in range(6)
        ]
        deadline = time.monotonic() + 30
        while not provider.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        owned_server.stop()  # jobs are in flight
        time.sleep(2)
        assert worker.poll() is None, "the worker exited during the outage"
        owned_server.start()
        after = [
            jobs.submit(pool, user=user, template="b {{n}}", context={"n": i}, model="openai/m")
            for i in range(4)
        ]
        ids = [s.output_id for s in before + after]

        def unfinished() -> int:
            with pool.connection() as conn:
                return conn.execute(
                    "SELECT count(*) AS n FROM llm_outputs WHERE id = ANY(%s) "
                    "AND status NOT IN ('completed', 'failed')",
                    (ids,),
                ).fetchone()["n"]

        deadline = time.monotonic() + 90
        while unfinished() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert unfinished() == 0
        assert worker.poll() is None, "the worker must still be the same process"
        outs = [jobs.get_output(pool, i, user) for i in ids]
        assert all(o.status == "completed" for o in outs), [
            (o.id, o.status, o.error_message) for o in outs
        ]
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        pool.close()


@pytest.mark.slow
def test_api_answers_503_during_restart_and_recovers(owned_server):
    from fastapi.testclient import TestClient

    from api.app import create_app

    pool = sync_pool(owned_server.url, max_size=2)
    accounts.create_user(pool, "ana")
    token = accounts.create_token(pool, "ana")
    pool.close()
    headers = {"Authorization": f"Bearer {token}"}
    job = {"template": "x {{y}}", "context": {"y": 1}, "model": "offline/echo"}
    with TestClient(create_app()) as client:
        client.app.state.pool.timeout = 1.0  # report the outage quickly
        assert client.post("/api/v1/llm_jobs", json=job, headers=headers).status_code == 202
        owned_server.stop()
        try:
            health = client.get("/healthz")
            assert health.status_code == 503 and health.json()["database"] is False
            down = client.post("/api/v1/llm_jobs", json=job, headers=headers)
            assert down.status_code == 503
            assert down.json() == {"detail": "the database is unavailable; retry shortly"}
        finally:
            owned_server.start()
        # the same process, the same pool: back without a restart
        deadline = time.monotonic() + 30
        while client.get("/healthz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.post("/api/v1/llm_jobs", json=job, headers=headers).status_code == 202
        listed = client.get("/api/v1/llm_outputs", headers=headers).json()["items"]
        assert len(listed) == 2  # the refused request wrote nothing


@pytest.mark.slow
def test_dashboard_says_so_during_restart_and_recovers(owned_server, monkeypatch):
    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
    monkeypatch.setenv("LLMJOBS_SINGLE_USER", "1")
    monkeypatch.setenv("LLMJOBS_DASHBOARD_DB_TIMEOUT", "1")

    def errors(at) -> str:
        return " ".join(e.value for e in at.error)

    first = AppTest.from_file(app, default_timeout=60).run()
    assert not first.exception and "cannot be reached" not in errors(first)
    owned_server.stop()
    try:
        down = AppTest.from_file(app, default_timeout=60).run()
        assert not down.exception
        assert "The database cannot be reached" in errors(down)
    finally:
        owned_server.start()
    deadline = time.monotonic() + 30
    while True:  # the same process and its pool: back without a restart
        back = AppTest.from_file(app, default_timeout=60).run()
        if "cannot be reached" not in errors(back) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not back.exception and "cannot be reached" not in errors(back)
