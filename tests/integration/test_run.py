"""`llmjobs run` (what `make run` starts) as a real process: its banner, a quiet Ctrl-C, a child
that dies by itself, and busy ports refused before anything starts."""

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
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.integration.test_full_run import _free_port

LLMJOBS = Path(sys.executable).parent / "llmjobs"
ROOT = Path(__file__).resolve().parents[2]
BANNER = "LLM Jobs is running"


def _start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(LLMJOBS), "run", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _banner(run: subprocess.Popen, timeout: float = 90) -> list[str]:
    """The banner's lines, once printed (stdout carries nothing else)."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = run.stdout.readline()
        if not line:
            pytest.fail(f"llmjobs run ended before its banner: {run.wait()} {run.stderr.read()}")
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return lines[lines.index(BANNER) :]
    pytest.fail("no banner in time")


def _log_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _children(pid: int) -> dict[str, int]:
    """The run's child processes by the name of what they run (api, worker, dashboard)."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            words = [w.decode() for w in cmdline]
            name = "api" if "api" in words else "worker" if "worker" in words else "dashboard"
            found[name] = int(entry.name)
    return found


@pytest.mark.slow
def test_banner_then_a_quiet_ctrl_c(database_url):
    api_port, dash_port = _free_port(), _free_port()
    # trust authentication ignores the password: it is there to be kept out of what is printed
    info = conninfo_to_dict(database_url)
    with_password = make_conninfo(database_url, password="hunter2-secret")
    ports = {"LLMJOBS_API_PORT": str(api_port), "LLMJOBS_DASHBOARD_PORT": str(dash_port)}
    run = _start({"DATABASE_URL": with_password, **ports})
    try:
        banner = _banner(run)
        assert httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{dash_port}/_stcore/health", timeout=5).is_success
        second = _start(ports)
        second_out, second_err = second.communicate(timeout=60)
        assert second.returncode == 1 and second_out == ""
        assert second_err.splitlines()[-1] == (
            f"error: port {dash_port} (dashboard) is in use by another LLM Jobs dashboard; "
            "stop the other `make run` (or whatever listens there) or set LLMJOBS_DASHBOARD_PORT"
        )
        second = _start({**ports, "LLMJOBS_DASHBOARD_PORT": str(_free_port())}, "--no-dashboard")
        assert "in use by another LLM Jobs api;" in second.communicate(timeout=60)[1]
    finally:
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the process group
        out, err = run.communicate(timeout=90)
    text = "\n".join(banner)
    assert f"http://localhost:{dash_port}" in text
    assert f"http://127.0.0.1:{api_port}  (docs: http://127.0.0.1:{api_port}/docs)" in text
    where = (
        f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}, database {info['dbname']}"
    )
    assert f"PostgreSQL at {where}" in text
    assert "Ctrl-C" in text
    assert "hunter2" not in text + out + err

    assert run.returncode == 0, err
    lines = _log_lines(err)
    stopped = [line for line in lines if line["message"] == "stopped"]
    assert stopped[-1]["processes"] == {
        "worker": "stopped",
        "api": "stopped",
        "dashboard": "stopped",
    }
    assert not [line for line in lines if line["level"] == "error"]
    assert "-15" not in err and "Traceback" not in err
    # no line of any process carries a library's sentinel field
    assert not [line for line in lines if "litellm_redacted" in line]


@pytest.mark.slow
def test_a_child_that_dies_is_reported_and_stops_the_rest(database_url):
    run = _start({"LLMJOBS_API_PORT": str(_free_port())}, "--no-dashboard")
    try:
        assert any(line.startswith("  API ") for line in _banner(run))
        children = _children(run.pid)
        assert set(children) == {"api", "worker"}
        os.kill(children["api"], signal.SIGKILL)
        _, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
            run.communicate(timeout=90)
    assert run.returncode == 1
    lines = _log_lines(err)
    died = [line for line in lines if line["message"] == "process exited; stopping the rest"]
    assert [(d["process"], d["code"]) for d in died] == [("api", -9)]
    assert lines[-1]["processes"] == {"worker": "stopped", "api": -9}
    assert err.splitlines()[-1] == "error: api exited by itself with status -9"


@pytest.mark.parametrize("name", ["dashboard", "api"])
def test_a_busy_port_is_named_before_anything_starts(database_url, name):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "api" if name == "dashboard" else "dashboard"
        setting = f"LLMJOBS_{name.upper()}_PORT"
        run = _start({setting: str(port), f"LLMJOBS_{other.upper()}_PORT": str(_free_port())})
        out, err = run.communicate(timeout=60)
    assert run.returncode == 1
    assert out == ""
    assert err.splitlines()[-1] == (
        f"error: port {port} ({name}) is in use; stop the other `make run` "
        f"(or whatever listens there) or set {setting}"
    )
    assert not [
        line for line in _log_lines(err) if line["message"] in ("database ready", "started")
    ]


def test_the_dashboard_listens_on_this_machine_only():
    # in single-user mode every visitor is the admin: like the API, the dashboard is local
    from tasks.cli import runner

    command = runner.commands(dashboard=True, api=False)["dashboard"]
    options = dict(zip(command[3::2], command[4::2], strict=False))
    assert options["--server.address"] == "127.0.0.1"


def test_the_dashboard_looks_nothing_up_on_the_internet_at_start(monkeypatch):
    # Headless Streamlit prints its URLs at start, the external one looked up on the internet
    # (checkip.amazonaws.com); the banner says where the dashboard is, so that print is off.
    from streamlit import config
    from streamlit.web import bootstrap

    from tasks.cli import runner

    command = runner.commands(dashboard=True, api=False)["dashboard"]
    options = dict(zip(command[3::2], command[4::2], strict=False))
    assert options["--server.headless"] == "true"
    monkeypatch.setattr(
        "streamlit.net_util.get_external_ip",
        lambda: pytest.fail("the external address was looked up"),
    )
    names = [n.removeprefix("--") for n in options if n != "--server.port"]
    saved = {name: config.get_option(name) for name in names}
    for name in names:
        value = options[f"--{name}"]
        config.set_option(name, value == "true" if value in ("true", "false") else value)
    try:
        bootstrap._print_url(is_running_hello=False)  # what `streamlit run` calls at start
    finally:
        for name, value in saved.items():
            config.set_option(name, value)
