"""`llmjobs run` (what `make run` starts): the database, migrations, a worker and the front ends.

Uses DATABASE_URL when set, otherwise the embedded PostgreSQL in `.data/`. Every child gets the
same DATABASE_URL. Ctrl-C (or SIGTERM) stops the children, waits for them, then the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from db.embedded import PROJECT_ROOT
from db.pool import database_url
from tasks.config import get_settings
from tasks.demo import hint_if_empty
from tasks.logs import configure_logging, get_logger

log = get_logger("llmjobs.run")


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def commands(dashboard: bool, api: bool) -> dict[str, list[str]]:
    """The processes to start, by name."""
    found = {"worker": [_bin("procrastinate"), "--app=tasks.app", "worker"]}
    if dashboard and (PROJECT_ROOT / "streamlit_app.py").exists():
        port = os.environ.get("LLMJOBS_DASHBOARD_PORT", "8501")
        found["dashboard"] = [
            _bin("streamlit"),
            "run",
            str(PROJECT_ROOT / "streamlit_app.py"),
            "--server.port",
            port,
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ]
    if api and (PROJECT_ROOT / "api" / "__init__.py").exists():
        found["api"] = [_bin("llmjobs"), "api"]
    return found


def run(*, dashboard: bool = True, api: bool = True) -> dict[str, int]:
    """Start everything and wait until interrupted; return the children's exit codes."""
    configure_logging()
    embedded = not os.environ.get("DATABASE_URL")
    url = database_url()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "LLMJOBS_SINGLE_USER": os.environ.get("LLMJOBS_SINGLE_USER", "1" if embedded else "0"),
    }
    log.info("database ready", embedded=embedded)
    subprocess.run([_bin("llmjobs"), "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    # Each child in its own session: Ctrl-C reaches only this process, which then asks each child
    # once to stop (a second signal would make the worker quit without finishing its jobs).
    children = {
        name: subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, start_new_session=True)
        for name, cmd in commands(dashboard, api).items()
    }
    log.info("started", processes=sorted(children))
    if hint := hint_if_empty(url):
        log.info(hint)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(p.poll() is None for p in children.values()):
        time.sleep(0.5)
    for name, proc in children.items():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        elif not stopping:
            log.error("process exited; stopping the rest", process=name, code=proc.returncode)
    # the worker finishes its jobs within its grace period; a little more for the rest
    deadline = time.monotonic() + get_settings().shutdown_grace + 5
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.info("stopped")
    return {name: proc.returncode for name, proc in children.items()}
