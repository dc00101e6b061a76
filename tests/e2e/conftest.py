"""Browser tests: Debian's Chromium driven by Playwright (never a browser Playwright downloads).

Chromium is installed with apt-get when missing and we may (root, apt-get present); otherwise the
tests are skipped saying why, except in CI (CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _install_chromium() -> str:
    """What happened when trying to install Chromium with apt-get (empty when it worked)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "not root or no apt-get, so Chromium cannot be installed here"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}"
    return ""


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's Chromium, installed on first use when possible."""
    problem = "" if os.path.exists(CHROMIUM) else _install_chromium()
    if not os.path.exists(CHROMIUM):
        reason = f"BROWSER TEST NOT RUN: {CHROMIUM} is missing ({problem or 'install failed'})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the dashboard exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the dashboard did not answer in {timeout} s: {log.read_text()[-2000:]}")


@pytest.fixture
def services(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The dashboard (single-user mode) and a worker on this test's database; yields the URL."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LLMJOBS_SINGLE_USER": "1",
        "LLMJOBS_POLL_INTERVAL": "0.2",
    }
    bin_dir = Path(sys.executable).parent
    started: list[tuple[subprocess.Popen, object]] = []
    dashboard_log = tmp_path / "dashboard.log"
    for command, log in (
        (
            [
                str(bin_dir / "streamlit"),
                "run",
                str(ROOT / "streamlit_app.py"),
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
            ],
            dashboard_log,
        ),
        ([str(bin_dir / "procrastinate"), "--app=tasks.app", "worker"], tmp_path / "worker.log"),
    ):
        handle = open(log, "w")  # noqa: SIM115 - closed below, after the process
        started.append(
            (
                subprocess.Popen(
                    command, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT
                ),
                handle,
            )
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(f"{url}/_stcore/health", started[0][0], dashboard_log)
        yield url
    finally:
        for proc, _ in started:
            proc.terminate()
        for proc, handle in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            handle.close()
        for log in sorted(tmp_path.glob("*.log")):  # shown by pytest when the test failed
            print(f"--- {log.name} ---\n{log.read_text()[-3000:]}")
