"""End to end: `llmjobs api` and a procrastinate worker as real processes on the test database;
a job posted over HTTP is run by the worker and read back completed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tasks import accounts
from tests.api.conftest import EXAMPLE_JOB

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_api_and_worker_processes_complete_a_job(database_url, pool, analyst, tmp_path):
    token = accounts.create_token(pool, analyst.name)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "LLMJOBS_POLL_INTERVAL": "0.1"}
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    processes: list[subprocess.Popen] = []
    try:
        with api_log.open("w") as api_err, worker_log.open("w") as worker_err:
            processes.append(
                subprocess.Popen(
                    [str(BIN / "llmjobs"), "api", "--port", str(port)],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=api_err,
                )
            )
            processes.append(
                subprocess.Popen(
                    [str(BIN / "procrastinate"), "--app=tasks.app", "worker"],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=worker_err,
                )
            )
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}

        def healthy() -> bool:
            assert all(p.poll() is None for p in processes), api_log.read_text()[-2000:]
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, 30, "the API to answer /healthz")
        created = httpx.post(f"{base}/api/v1/llm_jobs", headers=headers, json=EXAMPLE_JOB)
        assert created.status_code == 202, created.text
        output_id = created.json()["output_id"]

        def finished() -> dict | None:
            output = httpx.get(f"{base}/api/v1/llm_outputs/{output_id}", headers=headers).json()
            return output if output["status"] in ("completed", "failed") else None

        output = wait_for(finished, 30, "the worker to finish the job")
        assert output["status"] == "completed", output["error_message"]
        assert output["job_id"] == created.json()["job_id"]
        assert output["parsed_output"].startswith("## Answer")
        assert "Explain recursion to a beginner" in output["raw_response"]
    finally:
        for process in processes:
            stop(process)

    lines = [json.loads(line) for line in api_log.read_text().splitlines() if line.startswith("{")]
    logged = [(r["method"], r["path"], r["status"]) for r in lines if r["message"] == "request"]
    assert ("POST", "/api/v1/llm_jobs", 202) in logged
    assert token not in api_log.read_text()
