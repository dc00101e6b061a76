"""What the benchmarks share: a fresh database per run, statistics, printed tables and the JSON
line, goals for the summary, worker processes, and a fast OpenAI-compatible model server.

Every benchmark creates `llmjobs_bench_<random>` on the server named by BENCH_DATABASE_URL
(default postgresql://root@127.0.0.1:5432/postgres), migrates it and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# litellm reads this at import: the bundled price map, never a download.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

DEFAULT_SERVER = "postgresql://root@127.0.0.1:5432/postgres"
BIN = Path(sys.executable).parent
PROCRASTINATE = BIN / "procrastinate"
LLMJOBS = BIN / "llmjobs"
STREAMLIT = BIN / "streamlit"
# Where processes started by a benchmark write their logs (kept for a look after a run).
LOG_DIR = Path(tempfile.gettempdir()) / "llmjobs-bench"


# --- the database ---------------------------------------------------------------------------


def server_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", "").strip() or DEFAULT_SERVER


def server_facts() -> dict[str, str]:
    """PostgreSQL version and the settings that shape the figures."""
    with psycopg.connect(server_url(), autocommit=True) as conn:
        facts = {"postgresql": conn.execute("SHOW server_version").fetchone()[0]}
        for name in ("max_connections", "shared_buffers", "work_mem", "synchronous_commit"):
            facts[name] = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[
                0
            ]
    return facts


@contextlib.contextmanager
def fresh_database(*, migrate: bool = True, server: str | None = None) -> Iterator[str]:
    """A new database on the bench server, or on `server` (migrated unless told not to); yields
    its conninfo and drops it, whatever happened, at the end."""
    server = server or server_url()
    name = f"llmjobs_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(server, dbname=name)
    try:
        if migrate:
            from db.migrate import apply

            with psycopg.connect(url, row_factory=dict_row) as conn:
                apply(conn)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(url, row_factory=dict_row, autocommit=True, **kwargs)


def db_now(url: str) -> float:
    """The server's clock as a Unix time (the same host's clock as time.time())."""
    with connect(url) as conn:
        return conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8 AS t").fetchone()[
            "t"
        ]


# --- figures --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / max / mean in milliseconds of durations given in seconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else float("nan"),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"),
    }


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain-text table, columns sized to their content."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n## {title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row, shown in zip(rows, cells, strict=True):
        # numbers to the right, words to the left
        print(
            "  ".join(
                c.rjust(w) if isinstance(v, int | float) else c.ljust(w)
                for v, c, w in zip(row, shown, widths, strict=True)
            ).rstrip()
        )
    sys.stdout.flush()


def print_json(name: str, figures: dict[str, Any]) -> None:
    print(json.dumps({"bench": name, **figures}, default=str))
    sys.stdout.flush()


@dataclass
class Goal:
    """One line of the summary: what was aimed at and what was measured."""

    bench: str
    metric: str
    goal: str
    measured: float
    met: bool | None  # None: informational, no goal
    unit: str = ""

    def row(self) -> list[Any]:
        verdict = "-" if self.met is None else ("met" if self.met else "MISSED")
        return [self.bench, self.metric, self.goal, f"{fmt(self.measured)} {self.unit}", verdict]


def at_least(bench: str, metric: str, measured: float, goal: float, unit: str = "") -> Goal:
    return Goal(bench, metric, f">= {fmt(goal)} {unit}".strip(), measured, measured >= goal, unit)


def at_most(bench: str, metric: str, measured: float, goal: float, unit: str = "") -> Goal:
    return Goal(bench, metric, f"<= {fmt(goal)} {unit}".strip(), measured, measured <= goal, unit)


def print_goals(title: str, goals: Sequence[Goal]) -> None:
    print_table(title, ["bench", "metric", "goal", "measured", "verdict"], [g.row() for g in goals])


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    return parser


def log_to_file(name: str, level: str = "INFO") -> Path:
    """Log as our processes do (JSON lines at INFO), into LOG_DIR/<name>.log rather than the
    terminal, so a benchmark pays for its log lines and its own output stays readable."""
    from tasks.logs import configure_logging

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = LOG_DIR / f"{name}.log"
    configure_logging(level, stream=open(path, "a"))  # noqa: SIM115 - lives as long as logging
    return path


def load_average() -> str:
    """The 1-minute load average and the cores: the machine may be shared."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a process a benchmark starts: our database and the given settings."""
    env = {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1", **extra}
    env.pop("BENCH_DATABASE_URL", None)
    return env


def spawn(args: Sequence[str], env: dict[str, str], label: str) -> subprocess.Popen:
    """Start a process with its output in LOG_DIR/<label>.log."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / f"{label}.log", "w")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        [str(a) for a in args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )


def spawn_dashboard(url: str, port: int, label: str, script: str = "streamlit_app.py") -> Any:
    """`streamlit run script` headless on 127.0.0.1:port, single-user mode, on database url."""
    return spawn(
        [
            STREAMLIT,
            "run",
            script,
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        bench_env(url, LLMJOBS_SINGLE_USER="1", LLMJOBS_USER="local"),
        label,
    )


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after timeout."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.02) -> float:
    """Poll check until true; return the seconds it took. Raises TimeoutError naming what."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(every)
    raise TimeoutError(f"{what} not within {timeout:.0f} s")


def workers_registered(url: str) -> int:
    with connect(url) as conn:
        return conn.execute("SELECT count(*) AS n FROM procrastinate_workers").fetchone()["n"]


class CpuMeter:
    """CPU seconds used between start() and stop() by named groups of processes (each with its
    children) and by the local PostgreSQL server's processes, found by name; and how busy the
    whole machine was (`machine_busy`: the share of all its cores' time not idle)."""

    def __init__(self, **pids: Sequence[int]):
        self.pids = pids
        self._before: dict[int, float] = {}
        self._machine_before: tuple[float, float] = (0.0, 0.0)
        self.seconds: dict[str, float] = {}
        self.machine_busy = 0.0

    @staticmethod
    def _machine() -> tuple[float, float]:
        """(idle, total) CPU seconds of all cores since boot."""
        import psutil

        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        # Linux counts guest time inside user time too (as psutil's cpu_percent allows for).
        guest = getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
        return idle, sum(times) - guest

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        import psutil

        found: dict[int, tuple[str, float]] = {}
        for role, pids in self.pids.items():
            for pid in pids:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc = psutil.Process(pid)
                    for p in [proc, *proc.children(recursive=True)]:
                        t = p.cpu_times()
                        found[p.pid] = (role, t.user + t.system)
        for proc in psutil.process_iter(["name", "cpu_times"]):
            if proc.info["name"] == "postgres" and proc.info["cpu_times"]:
                t = proc.info["cpu_times"]
                found[proc.pid] = ("postgres", t.user + t.system)
        return found

    def start(self) -> None:
        self._before = {pid: cpu for pid, (_, cpu) in self._snapshot().items()}
        self._machine_before = self._machine()

    def stop(self) -> dict[str, float]:
        idle, total = self._machine()
        spent = total - self._machine_before[1]
        self.machine_busy = 1 - (idle - self._machine_before[0]) / spent if spent > 0 else 0.0
        self.seconds = {}
        for pid, (role, cpu) in self._snapshot().items():
            self.seconds[role] = self.seconds.get(role, 0.0) + cpu - self._before.get(pid, 0.0)
        return self.seconds


def jobs_finished(url: str, task: str, since_job_id: int = 0) -> int:
    """How many jobs of a task above since_job_id have ended (succeeded or failed)."""
    with connect(url) as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE id > %s AND task_name = %s "
            "AND status IN ('succeeded', 'failed')",
            (since_job_id, task),
        ).fetchone()["n"]


def last_finish_time(url: str, task: str, since_job_id: int = 0) -> float:
    """Unix time of the last end (succeeded or failed) of a job of task above since_job_id."""
    with connect(url) as conn:
        return conn.execute(
            "SELECT extract(epoch FROM max(events.at))::float8 AS t "
            "FROM procrastinate_events AS events "
            "JOIN procrastinate_jobs AS jobs ON jobs.id = events.job_id "
            "WHERE jobs.id > %s AND jobs.task_name = %s "
            "AND events.type IN ('succeeded', 'failed')",
            (since_job_id, task),
        ).fetchone()["t"]


# --- a fast model server --------------------------------------------------------------------


def _completion_body(model: str, content: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
        }
    ).encode()


def _json_response(status: bytes, payload: bytes, *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: %d\r\nconnection: keep-alive\r\n\r\n" % len(payload)
        + payload
    )


def _model_and_prompt(body: bytes) -> tuple[str, str]:
    """The model a chat request names and its last message (its first 200 characters)."""
    try:
        request = json.loads(body)
        messages = request.get("messages") or [{}]
        return str(request.get("model", "bench")), str(messages[-1].get("content", ""))[:200]
    except (ValueError, AttributeError, TypeError):
        return "bench", ""


class _RequestsPerWindow:
    """A provider's requests-per-minute limit, per model: a request that would make more than
    `rpm` answered requests of its model in the last `window` seconds is refused, with the
    seconds until the oldest of them leaves the window. Refused requests do not count."""

    def __init__(self, rpm: int, window: float):
        self.rpm = rpm
        self.window = window
        self.answered: dict[str, collections.deque[float]] = {}

    def refuse(self, model: str, now: float) -> float | None:
        """None when the request is let through (and counted), else the seconds to wait."""
        recent = self.answered.setdefault(model, collections.deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if len(recent) >= self.rpm:
            return recent[0] + self.window - now
        recent.append(now)
        return None


async def _serve_model(
    port: int,
    delay: float,
    content: str,
    spread: float = 0.0,
    rpm: int | None = None,
    window: float = 60.0,
) -> None:
    """An OpenAI-compatible chat endpoint on asyncio: every POST answers `content` after
    `delay` seconds (with `spread`, after a time drawn evenly from delay × (1 ± spread), whose
    mean is still `delay`); HTTP/1.1 keep-alive, Content-Length bodies only (what litellm sends).
    With `rpm`, it enforces a provider's limit of rpm requests per model in any `window` seconds
    (_RequestsPerWindow): a request beyond is answered 429 at once, with a Retry-After in
    seconds (three decimals, for windows shortened to seconds). GET /arrivals lists every
    request it read: [Unix time, model, status, the last message's first 200 characters]."""
    draw = random.Random(0)
    limit = _RequestsPerWindow(rpm, window) if rpm else None
    arrivals: list[tuple[float, str, int, str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b"{}"
                if head.startswith(b"GET /arrivals"):
                    writer.write(_json_response(b"200 OK", json.dumps(arrivals).encode()))
                    await writer.drain()
                    continue
                now = time.time()
                model, prompt = _model_and_prompt(body)
                wait = limit.refuse(model, now) if limit else None
                arrivals.append((now, model, 200 if wait is None else 429, prompt))
                if wait is not None:
                    refusal = {"error": {"message": "rate limit reached", "type": "requests"}}
                    writer.write(
                        _json_response(
                            b"429 Too Many Requests",
                            json.dumps(refusal).encode(),
                            b"retry-after: %.3f" % max(wait, 0.001),
                        )
                    )
                    await writer.drain()
                    continue
                await asyncio.sleep(delay * (1 + spread * draw.uniform(-1, 1)))
                writer.write(_json_response(b"200 OK", _completion_body(model, content)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    # Nothing to clean up: on SIGTERM the process simply ends.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, os._exit, 0)
    print(f"listening {port}", flush=True)
    async with server:
        await server.serve_forever()


class ModelServer:
    """The asyncio model server in a process of its own (so its CPU is not the caller's); with
    `rpm`, enforcing a provider's limit of rpm requests per model in any `window` seconds."""

    def __init__(
        self,
        delay: float,
        content: str = "bench answer",
        spread: float = 0.0,
        rpm: int | None = None,
        window: float = 60.0,
    ):
        self.port = free_port()
        limit = ["--rpm", str(rpm), "--window", str(window)] if rpm else []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.common",
                "serve-model",
                "--port",
                str(self.port),
                "--delay",
                str(delay),
                "--spread",
                str(spread),
                "--content",
                content,
                *limit,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("listening"):
            raise RuntimeError(f"the model server did not start: {line!r}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def arrivals(self) -> list[tuple[float, str, int, str]]:
        """Every request the server read: (Unix time, model, status answered, the last
        message's first 200 characters)."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/arrivals", timeout=30) as r:
            return [tuple(a) for a in json.load(r)]

    def stop(self) -> None:
        stop(self.proc, timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark helpers")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve-model", help="serve an OpenAI-compatible chat endpoint")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--delay", type=float, default=0.5)
    serve.add_argument("--spread", type=float, default=0.0, help="answer after delay × (1 ± this)")
    serve.add_argument("--content", default="bench answer")
    serve.add_argument("--rpm", type=int, default=None, help="requests per model per window")
    serve.add_argument("--window", type=float, default=60.0, help="the limit's window, seconds")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _serve_model(args.port, args.delay, args.content, args.spread, args.rpm, args.window)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
