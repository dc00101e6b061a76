"""`llmjobs run` (what `make run` starts): the database, migrations, a worker and the front ends.

Uses DATABASE_URL when set, otherwise the embedded PostgreSQL in `.data/`. Every child gets the
same DATABASE_URL. Before anything starts, the front ends' ports are checked; once every process
is up a banner says where to find them. Ctrl-C (or SIGTERM) stops the children, waits for them,
then the database: a stop we asked for is quiet and exits 0; a child that exits by itself is
reported with its status and stops the rest (exit 1).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from db.embedded import PROJECT_ROOT
from tasks.config import child_environment, data_dir, database_url, get_settings
from tasks.demo import hint_if_empty
from tasks.errors import Conflict
from tasks.logs import configure_logging, get_logger

log = get_logger("llmjobs.run")

# Exit statuses of a child that stopped because we asked it to (uvicorn re-raises the signal).
_STOPPED_ON_REQUEST = frozenset({0, -signal.SIGTERM, -signal.SIGINT})


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def ports(dashboard: bool, api: bool) -> dict[str, int]:
    """The ports the front ends will listen on, by process name."""
    settings = get_settings()
    found = {}
    if dashboard and (PROJECT_ROOT / "streamlit_app.py").exists():
        found["dashboard"] = settings.dashboard_port
    if api and (PROJECT_ROOT / "api" / "__init__.py").exists():
        found["api"] = settings.api_port
    return found


def commands(dashboard: bool, api: bool) -> dict[str, list[str]]:
    """The processes to start, by name."""
    found = {"worker": [_bin("procrastinate"), "--app=tasks.app", "worker"]}
    listening = ports(dashboard, api)
    if "dashboard" in listening:
        found["dashboard"] = [
            _bin("streamlit"),
            "run",
            str(PROJECT_ROOT / "streamlit_app.py"),
            "--server.port",
            str(listening["dashboard"]),
            # This machine only, as the API: in single-user mode every visitor is the admin.
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            # The banner says where the dashboard is; Streamlit's own lines would look up the
            # machine's external address on the internet.
            "--logger.hideWelcomeMessage",
            "true",
        ]
    if "api" in listening:
        found["api"] = [_bin("llmjobs"), "api", "--port", str(listening["api"])]
    return found


def _in_use(port: int) -> bool:
    with socket.socket() as probe:
        # SO_REUSEADDR: a port a stopped run left in TIME_WAIT is free, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


# What answers there when the holder is our own dashboard or API (another `make run`).
_OURS = {"dashboard": ("/_stcore/health", "ok"), "api": ("/openapi.json", '"title":"LLM Jobs"')}


def _holder(name: str, port: int) -> str:
    path, mark = _OURS[name]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as answer:
            if mark in answer.read(100_000).decode(errors="replace"):
                return f" by another LLM Jobs {name}"
    except (OSError, ValueError):
        pass
    return ""


def check_ports(listening: dict[str, int]) -> None:
    """Raise Conflict naming the first port another program holds, and how to choose another."""
    for name, port in listening.items():
        if _in_use(port):
            setting = f"LLMJOBS_{name.upper()}_PORT"
            raise Conflict(
                f"port {port} ({name}) is in use{_holder(name, port)}; stop the other "
                f"`make run` (or whatever listens there) or set {setting}"
            )


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def describe_database(url: str, embedded: bool) -> str:
    """Where the data is, for people: never the password."""
    if embedded:
        folder = data_dir() / "pg"
        shown = folder.relative_to(Path.cwd()) if folder.is_relative_to(Path.cwd()) else folder
        return f"embedded PostgreSQL in {shown}"
    info = conninfo_to_dict(url)
    where = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"
    return f"PostgreSQL at {where}, database {info.get('dbname') or info.get('user') or '?'}"


def banner(listening: dict[str, int], database: str) -> str:
    lines = ["LLM Jobs is running"]
    if "dashboard" in listening:
        lines.append(f"  dashboard  http://localhost:{listening['dashboard']}")
    if "api" in listening:
        api = f"http://127.0.0.1:{listening['api']}"
        lines.append(f"  API        {api}  (docs: {api}/docs)")
    lines.append("  worker     running, all queues")
    lines.append(f"  database   {database}")
    lines.append("Press Ctrl-C to stop everything.")
    return "\n".join(lines)


def _outcome(code: int, asked: bool) -> str | int:
    return "stopped" if asked and code in _STOPPED_ON_REQUEST else code


def run(*, dashboard: bool = True, api: bool = True) -> str | None:
    """Start everything and wait until interrupted or until a child exits by itself.

    Returns None after a clean stop, otherwise what went wrong. Raises Conflict, before
    starting anything, when a front end's port is taken.
    """
    settings = get_settings()
    configure_logging(settings.log_level)
    listening = ports(dashboard, api)
    check_ports(listening)
    embedded = not settings.database_url
    url = database_url()
    # LLMJOBS_SINGLE_USER when set, else single-user with the embedded database
    single_user = settings.single_user if "single_user" in settings.model_fields_set else embedded
    env = child_environment(DATABASE_URL=url, LLMJOBS_SINGLE_USER="1" if single_user else "0")
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
    announced = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(p.poll() is None for p in children.values()):
        if not announced and all(_listening(port) for port in listening.values()):
            print(banner(listening, describe_database(url, embedded)), flush=True)
            announced = True
        time.sleep(0.5)
    exited = {name: p.returncode for name, p in children.items() if p.poll() is not None}
    for name, proc in children.items():
        if name not in exited:
            proc.send_signal(signal.SIGTERM)
    if not stopping:
        for name, code in exited.items():
            log.error("process exited; stopping the rest", process=name, code=code)
    # the worker finishes its jobs within its grace period; a little more for the rest
    deadline = time.monotonic() + get_settings().shutdown_grace + 5
    killed = set()
    for name, proc in children.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed.add(name)
    outcomes: dict[str, str | int] = {
        name: "killed" if name in killed else _outcome(proc.returncode, name not in exited)
        for name, proc in children.items()
    }
    log.info("stopped", processes=outcomes)
    problems = []
    for name, outcome in outcomes.items():
        if outcome == "killed":
            problems.append(f"{name} did not stop within the grace period and was killed")
        elif name in exited:
            problems.append(f"{name} exited by itself with status {outcome}")
        elif outcome != "stopped":
            problems.append(f"{name} stopped with status {outcome}")
    return "; ".join(problems) or None
