"""Soak: N jobs through two worker processes while things break, then check the books.

    python -m bench.soak [--jobs 10000] [--workers 2] [--kills 2] [--db-restarts 1] [--outages 1]

A local OpenAI-compatible server fails at random (20 % 5xx, 5 % 429 with Retry-After, timeouts,
dropped connections) and goes fully down for the outages; workers are SIGKILLed and started again;
the database (an embedded server this script owns) is restarted. At the end: completed + failed
must equal N, nothing pending or processing, no duplicate outputs or jobs, every failure with its
message. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from db.pool import sync_pool  # noqa: E402
from tasks import accounts  # noqa: E402
from tasks import outputs as jobs  # noqa: E402
from tasks.config import get_settings  # noqa: E402
from tasks.logs import configure_logging  # noqa: E402
from tasks.testing import publish_served_models  # noqa: E402
from tests.support.pgserver import OwnedServer  # noqa: E402
from tests.support.provider import ScriptedProvider, chaos, error  # noqa: E402

PROCRASTINATE = Path(sys.executable).parent / "procrastinate"


@dataclass
class Books:
    jobs: int
    completed: int = 0
    failed: int = 0
    unfinished: int = 0
    duplicate_outputs: int = 0
    outputs_without_job: int = 0
    failed_without_message: int = 0
    retries: int = 0
    worker_kills: int = 0
    db_restarts: int = 0
    outages: int = 0
    submit_seconds: float = 0.0
    drain_seconds: float = 0.0
    model_calls: int = 0
    events: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return (
            self.completed + self.failed == self.jobs
            and self.unfinished == 0
            and self.duplicate_outputs == 0
            and self.outputs_without_job == 0
            and self.failed_without_message == 0
        )


class Workers:
    def __init__(self, count: int, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.procs = [self._start(i) for i in range(count)]

    def _start(self, index: int) -> subprocess.Popen:
        log = open(self.log_dir / f"worker-{index}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        return subprocess.Popen(
            [str(PROCRASTINATE), "--app=tasks.app", "worker"],
            env=self.env,
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )

    def kill_and_replace(self, index: int) -> None:
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait()
        self.procs[index] = self._start(index)

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()


def _progress(pool, ids_from: int) -> tuple[int, int]:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status IN ('completed', 'failed')) AS done, "
            "count(*) AS total FROM llm_outputs WHERE id >= %s",
            (ids_from,),
        ).fetchone()
    return row["done"], row["total"]


def _check_books(pool, books: Books) -> None:
    with pool.connection() as conn:
        row = conn.execute(
            """
            SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status IN ('pending', 'processing')) AS unfinished,
                   count(*) FILTER (WHERE status = 'failed' AND coalesce(error_message, '') = '')
                       AS failed_without_message,
                   count(*) FILTER (WHERE job_id IS NULL) AS outputs_without_job,
                   count(*) - count(DISTINCT job_id) AS duplicate_jobs,
                   count(*) - count(DISTINCT context) AS duplicate_prompts,
                   coalesce(sum(attempts), 0) - count(*) AS retries
              FROM llm_outputs
            """
        ).fetchone()
    books.completed = row["completed"]
    books.failed = row["failed"]
    books.unfinished = row["unfinished"]
    books.failed_without_message = row["failed_without_message"]
    books.outputs_without_job = row["outputs_without_job"]
    books.duplicate_outputs = row["duplicate_jobs"] + row["duplicate_prompts"]
    books.retries = row["retries"]


def run(
    *,
    n_jobs: int = 10_000,
    workers: int = 2,
    kills: int = 2,
    db_restarts: int = 1,
    outages: int = 1,
    concurrency: int = 20,
    seed: int = 1,
    timeout: float = 1800.0,
    data_dir: Path | None = None,
) -> Books:
    """Run the soak and return its books."""
    (ROOT / ".data").mkdir(exist_ok=True)
    folder = Path(data_dir or tempfile.mkdtemp(prefix="llmjobs-soak-", dir=ROOT / ".data"))
    folder.mkdir(parents=True, exist_ok=True)
    keep = {"folder": True}
    if data_dir is None:
        # Registered before the server starts, so it runs after the server is stopped at exit;
        # an unbalanced run keeps its database and worker logs for inspection.
        atexit.register(lambda: keep["folder"] or shutil.rmtree(folder, ignore_errors=True))
    server = OwnedServer(folder / "pg")
    server.migrate()
    provider = ScriptedProvider(chaos(seed, timeout_delay=1.5, p400=0.002)).start()
    env = {
        **os.environ,
        "DATABASE_URL": server.url,
        "OPENAI_API_BASE": provider.base_url,
        "OPENAI_API_KEY": "sk-soak-not-a-real-key",
        "LLMJOBS_MODEL_TIMEOUT": "1",
        # Waits shortened 20-fold (5 retries still span a few seconds of outage).
        "LLMJOBS_RETRY_SCALE": "0.05",
        "LLMJOBS_STALLED_AFTER": "3",
        "LLMJOBS_HEARTBEAT_INTERVAL": "1",
        "LLMJOBS_POLL_INTERVAL": "0.2",
        "LLMJOBS_WORKER_CONCURRENCY": str(concurrency),
        "LLMJOBS_LOG_LEVEL": "WARNING",
    }
    # This process submits too: it must see the same provider (until the run ends).
    saved = {k: os.environ.get(k) for k in ("OPENAI_API_BASE", "OPENAI_API_KEY")}
    os.environ["OPENAI_API_BASE"] = env["OPENAI_API_BASE"]
    os.environ["OPENAI_API_KEY"] = env["OPENAI_API_KEY"]
    get_settings.cache_clear()  # read again, with them
    books = Books(jobs=n_jobs)
    pool = sync_pool(server.url, max_size=4)
    try:
        user = accounts.create_user(pool, "soak")
        # The jobs are queued before the workers start: the catalog holds what they will serve.
        publish_served_models(pool, host="soak")
        started = time.monotonic()
        first_id = None
        for i in range(n_jobs):
            sub = jobs.submit(
                pool, user=user, template="soak job {{n}}", context={"n": i}, model="openai/soak"
            )
            first_id = first_id or sub.output_id
        books.submit_seconds = time.monotonic() - started

        crew = Workers(workers, env, folder)
        # Each disruption fires once progress passes its mark.
        plan: list[tuple[float, str]] = []
        plan += [((k + 1) / (kills + 1) * 0.8, "kill") for k in range(kills)]
        plan += [((k + 1) / (outages + 1) * 0.7, "outage") for k in range(outages)]
        plan += [((k + 1) / (db_restarts + 1) * 0.9, "restart") for k in range(db_restarts)]
        plan.sort()
        started = time.monotonic()
        deadline = started + timeout
        kill_index = 0
        while time.monotonic() < deadline:
            try:
                done, total = _progress(pool, first_id)
            except Exception:  # the database is restarting
                time.sleep(0.5)
                continue
            if done == total:
                break
            while plan and done >= plan[0][0] * total:
                _, action = plan.pop(0)
                books.events.append(f"{action} at {done}/{total}")
                if action == "kill":
                    crew.kill_and_replace(kill_index % workers)
                    kill_index += 1
                    books.worker_kills += 1
                elif action == "outage":
                    outage_default = provider.default
                    provider.default = error(503, "provider outage")
                    threading.Timer(
                        3.0, lambda d=outage_default: setattr(provider, "default", d)
                    ).start()
                    books.outages += 1
                else:
                    server.stop()
                    time.sleep(3)
                    server.start()
                    books.db_restarts += 1
            time.sleep(0.3)
        books.drain_seconds = time.monotonic() - started
        crew.stop()
        books.model_calls = len(provider.requests)
        _check_books(pool, books)
        keep["folder"] = not books.balanced
    finally:
        pool.close()
        provider.stop()
        with contextlib.suppress(Exception):  # already stopped when a restart failed
            server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
    return books


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--db-restarts", type=int, default=1)
    parser.add_argument("--outages", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    books = run(
        n_jobs=args.jobs,
        workers=args.workers,
        kills=args.kills,
        db_restarts=args.db_restarts,
        outages=args.outages,
        concurrency=args.concurrency,
        seed=args.seed,
    )
    rate = books.jobs / books.drain_seconds if books.drain_seconds else 0.0
    rows = [
        ("jobs", books.jobs),
        ("completed", books.completed),
        ("failed (with message)", books.failed),
        ("pending or processing", books.unfinished),
        ("duplicate outputs / jobs", books.duplicate_outputs),
        ("retries", books.retries),
        ("model calls", books.model_calls),
        ("worker kills", books.worker_kills),
        ("database restarts", books.db_restarts),
        ("provider outages", books.outages),
        ("submit seconds", round(books.submit_seconds, 1)),
        ("drain seconds", round(books.drain_seconds, 1)),
        ("jobs/s through the failures", round(rate, 1)),
    ]
    for name, value in rows:
        print(f"{name:<30} {value}")
    print("events:", "; ".join(books.events))
    print(
        json.dumps(
            {"soak": {**asdict(books), "jobs_per_s": round(rate, 1), "balanced": books.balanced}}
        )
    )
    return 0 if books.balanced else 1


if __name__ == "__main__":
    sys.exit(main())
