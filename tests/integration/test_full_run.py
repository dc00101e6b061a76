"""A full `llmjobs run` (what `make run` starts): worker, API and dashboard as processes. Jobs
go in through the API with a token; afterwards no API key and no token appears in anything the
processes printed, nor in what was stored."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tasks import accounts
from tests.support.provider import error, ok

LLMJOBS = Path(sys.executable).parent / "llmjobs"
# The command runs this tree's code, wherever the installed package points.
ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-live-0123456789abcdefSECRET"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def _final(api_port: int, headers: dict[str, str], output_id: int, timeout: float) -> dict:
    """The output once completed or failed (or as it stands after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        output = httpx.get(
            f"http://127.0.0.1:{api_port}/api/v1/llm_outputs/{output_id}",
            headers=headers,
            timeout=10,
        ).json()
        if output["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return output
        time.sleep(0.3)


@pytest.mark.slow
def test_full_run_leaks_no_secret(database_url, pool, analyst, provider, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    token = accounts.create_token(pool, "ana")
    provider.push(ok("fine answer"), error(401, f"Incorrect API key provided: {KEY}"))
    api_port, dash_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LLMJOBS_API_PORT": str(api_port),
        "LLMJOBS_DASHBOARD_PORT": str(dash_port),
        "LLMJOBS_LOG_LEVEL": "DEBUG",
    }
    with tempfile.TemporaryFile("w+") as captured:
        run = subprocess.Popen(
            [str(LLMJOBS), "run"],
            env=env,
            stdout=captured,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            _wait_http(f"http://127.0.0.1:{api_port}/healthz", 60)
            _wait_http(f"http://127.0.0.1:{dash_port}/_stcore/health", 60)
            headers = {"Authorization": f"Bearer {token}"}
            outputs = []
            for word in ("one", "two"):  # one at a time, so the scripted answers go in order
                answer = httpx.post(
                    f"http://127.0.0.1:{api_port}/api/v1/llm_jobs",
                    headers=headers,
                    json={
                        "template": "Say {{w}}",
                        "context": {"w": word},
                        "model": "openai/m",
                        "format": "text",
                    },
                    timeout=10,
                )
                assert answer.status_code == 202, answer.text
                outputs.append(_final(api_port, headers, answer.json()["output_id"], 60))
            assert [o["status"] for o in outputs] == ["completed", "failed"]
            assert "***" in outputs[1]["error_message"]
        finally:
            # Ctrl-C in a terminal signals the whole process group
            os.killpg(run.pid, signal.SIGINT)
            run.wait(60)
        captured.seek(0)
        printed = captured.read()
    assert run.returncode == 0
    assert '"worker": "stopped"' in printed  # the worker stopped gracefully, not killed
    assert '"message": "queued"' in printed  # the processes did log, as JSON
    assert KEY not in printed
    assert token not in printed
    with pool.connection() as conn:
        stored = json.dumps(conn.execute("SELECT * FROM llm_outputs").fetchall(), default=str)
        tokens = json.dumps(conn.execute("SELECT * FROM api_tokens").fetchall(), default=str)
    assert KEY not in stored
    assert token not in tokens
