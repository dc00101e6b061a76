"""Overhead: our whole LLM job against a procrastinate no-op task, same worker, same server.

    python -m bench.overhead [--jobs 10000] [--concurrency 10] [--quick] [--profile] [--what-if]

Ours: the real `llm_job` in an in-process procrastinate worker (mark processing, render, call the
model through litellm, parse, store, complete) with an in-process stub model, so only our own
cost shows. Baseline: a no-op async task on a plain procrastinate App with the same worker
settings. Jobs are bulk-inserted first, then a worker with `wait=False` drains the queue. Each
side gets its own fresh database. Reports jobs/s, worker CPU per job and the ratio (goal >= 0.80).

`--what-if` adds both runs again (half the jobs) with synchronous_commit=off on the worker's
connections, to show what waiting for each commit's WAL flush costs. `--profile` also samples
the worker with py-spy while it drains (2,000 jobs by default) and prints where its CPU goes:
by package, by function (self and inclusive).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Goal

NAME = "overhead"
GOAL_RATIO = 0.80
TEMPLATE = "Explain {{concept}} to a beginner in {{words}} words"


def _worker_options(app: Any, concurrency: int) -> dict[str, Any]:
    """Our worker's settings, minus our middleware: what the no-op worker runs with."""
    options = {k: v for k, v in app.worker_defaults.items() if k != "worker_middleware"}
    return {**options, "concurrency": concurrency, "wait": False, "install_signal_handlers": False}


async def _drain(app: Any, **options: Any) -> tuple[float, float]:
    """Run a worker until the queue is empty; (wall seconds, CPU seconds of this process)."""
    async with app.open_async():
        wall, cpu = time.perf_counter(), time.process_time()
        await app.run_worker_async(**options)
        return time.perf_counter() - wall, time.process_time() - cpu


def _queue_ours(url: str, jobs: int, model: str) -> float:
    from db.pool import sync_pool
    from tasks import accounts
    from tasks.outputs import submit_many

    pool = sync_pool(url, max_size=2)
    try:
        user = accounts.create_user(pool, "bench")
        contexts = [{"concept": f"concept {i}", "words": 50 + i % 100} for i in range(jobs)]
        started = time.perf_counter()
        submit_many(pool, user=user, template=TEMPLATE, model=model, contexts=contexts)
        return time.perf_counter() - started
    finally:
        pool.close()


def _count_completed(url: str) -> dict[str, int]:
    with common.connect(url) as conn:
        rows = conn.execute("SELECT status, count(*) AS n FROM llm_outputs GROUP BY status")
        return {r["status"]: r["n"] for r in rows}


def run_ours(jobs: int, concurrency: int, profile_to: Path | None = None) -> dict[str, Any]:
    """Drain `jobs` real LLM jobs against the stub model in this process."""
    from tasks.config import get_settings
    from tasks.testing import stub_model_success
    from tasks.worker.app import app

    with common.fresh_database() as url, stub_model_success() as model:
        os.environ["DATABASE_URL"] = url  # the app's pool is made from it when opened
        get_settings.cache_clear()  # read again, with it
        submit_s = _queue_ours(url, jobs, model)
        profiler = _start_profiler(profile_to) if profile_to else None
        try:
            wall, cpu = asyncio.run(
                _drain(app, concurrency=concurrency, wait=False, install_signal_handlers=False)
            )
        finally:
            if profiler:
                _stop_profiler(profiler)
        statuses = _count_completed(url)
    return {
        "jobs": jobs,
        "completed": statuses.get("completed", 0),
        "other": sum(n for s, n in statuses.items() if s != "completed"),
        "seconds": wall,
        "jobs_per_s": jobs / wall,
        "cpu_ms_per_job": cpu * 1000 / jobs,
        "submit_many_jobs_per_s": jobs / submit_s,
    }


def run_noop(jobs: int, concurrency: int) -> dict[str, Any]:
    """Drain `jobs` no-op jobs with procrastinate alone, with our worker's settings."""
    import procrastinate

    from tasks.worker.app import app as ours

    with common.fresh_database() as url:
        noop_app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=url, min_size=1, max_size=max(4, concurrency + 2)
            )
        )

        @noop_app.task(name="bench_noop")
        async def noop() -> None:
            pass

        async def defer_and_drain() -> tuple[float, float]:
            async with noop_app.open_async():
                await noop.batch_defer_async(*({} for _ in range(jobs)))
            return await _drain(noop_app, **_worker_options(ours, concurrency))

        wall, cpu = asyncio.run(defer_and_drain())
        with common.connect(url) as conn:
            done = conn.execute(
                "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'succeeded'"
            ).fetchone()["n"]
    return {
        "jobs": jobs,
        "completed": done,
        "other": jobs - done,
        "seconds": wall,
        "jobs_per_s": jobs / wall,
        "cpu_ms_per_job": cpu * 1000 / jobs,
    }


# --- profile --------------------------------------------------------------------------------


def _start_profiler(out: Path) -> subprocess.Popen:
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = common.BIN / "py-spy"
    proc = subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(os.getpid()),
            "--rate",
            "200",
            "--format",
            "raw",
            "--function",
            "--gil",
            "--full-filenames",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # let it attach before the drain starts
    return proc


def _stop_profiler(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _frame(text: str) -> tuple[str, str]:
    """'func (path:line)' as (func, path)."""
    name, _, where = text.rpartition(" (")
    return (name or text), where.rstrip(")").rsplit(":", 1)[0]


def _short(path: str) -> str:
    """A file as its package path: site-packages and the standard library dropped."""
    root = str(common.ROOT) + "/"
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if path.startswith(root):
        return path[len(root) :]
    if "/lib/python3." in path:
        return "stdlib/" + path.split("/lib/python3.", 1)[1].split("/", 1)[-1]
    return path or "?"


def _package(path: str) -> str:
    """What a file belongs to: a distribution (litellm, psycopg), stdlib/<module>, or ours
    (tasks/<module>, db/<module>)."""
    parts = _short(path).removesuffix(".py").split("/")
    if parts[0] in ("stdlib", "tasks", "db", "bench") and len(parts) > 1:
        return "/".join(parts[:2])
    return parts[0]


def summarise_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares from py-spy's collapsed stacks."""
    samples = 0
    by_package: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        samples += count
        func, where = frames[-1]
        by_package[_package(where)] += count
        self_time[f"{func} ({_short(where)})"] += count
        for name in {f"{f} ({_short(w)})" for f, w in frames}:
            inclusive[name] += count
    share = 100 / samples if samples else 0.0
    return {
        "samples": samples,
        "by_package": [(k, round(v * share, 1)) for k, v in by_package.most_common(top)],
        "self": [(k, round(v * share, 1)) for k, v in self_time.most_common(top)],
        "inclusive": [(k, round(v * share, 1)) for k, v in inclusive.most_common(top + 15)],
    }


def print_profile(summary: dict[str, Any], jobs: int) -> None:
    print(f"\nprofile: {summary['samples']} samples over {jobs} jobs (on-CPU, all threads)")
    common.print_table("CPU by package (self)", ["package", "%"], summary["by_package"])
    common.print_table("CPU by function (self)", ["function", "%"], summary["self"])
    common.print_table("CPU by function (inclusive)", ["function", "%"], summary["inclusive"])


# --- the benchmark --------------------------------------------------------------------------


@contextlib.contextmanager
def _async_commit() -> Iterator[None]:
    """Connections opened inside commit without waiting for the WAL flush (libpq PGOPTIONS)."""
    saved = os.environ.get("PGOPTIONS")
    os.environ["PGOPTIONS"] = "-c synchronous_commit=off"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PGOPTIONS", None)
        else:
            os.environ["PGOPTIONS"] = saved


def run(
    *,
    jobs: int = 10_000,
    concurrency: int = 10,
    profile: bool = False,
    profile_jobs: int = 2000,
    what_if: bool = False,
) -> list[Goal]:
    noop = run_noop(jobs, concurrency)
    ours = run_ours(jobs, concurrency)
    ratio = ours["jobs_per_s"] / noop["jobs_per_s"]
    sides = [("procrastinate no-op", noop), ("ours: llm_job + stub model", ours)]
    if what_if:
        # What the commit latency costs: the same runs without waiting for the WAL flush.
        with _async_commit():
            sides.append(("no-op, synchronous_commit=off", run_noop(jobs // 2, concurrency)))
            sides.append(("ours, synchronous_commit=off", run_ours(jobs // 2, concurrency)))
    rows = [
        [
            name,
            r["jobs"],
            r["completed"],
            r["seconds"],
            r["jobs_per_s"],
            r["cpu_ms_per_job"],
        ]
        for name, r in sides
    ]
    common.print_table(
        f"Overhead: one in-process worker, concurrency {concurrency}",
        ["task", "jobs", "completed", "seconds", "jobs/s", "CPU ms/job"],
        rows,
    )
    print(f"ratio ours / no-op: {ratio:.3f} (goal >= {GOAL_RATIO})")
    print(f"bulk submission while queueing: {ours['submit_many_jobs_per_s']:.0f} jobs/s")
    figures = {
        "jobs": jobs,
        "concurrency": concurrency,
        "noop_jobs_per_s": round(noop["jobs_per_s"], 1),
        "ours_jobs_per_s": round(ours["jobs_per_s"], 1),
        "noop_cpu_ms_per_job": round(noop["cpu_ms_per_job"], 3),
        "ours_cpu_ms_per_job": round(ours["cpu_ms_per_job"], 3),
        "ratio": round(ratio, 3),
        "goal_ratio": GOAL_RATIO,
    }
    common.print_json(NAME, figures)
    goals = [
        common.at_least(NAME, "jobs/s ours ÷ no-op", ratio, GOAL_RATIO),
        Goal(
            NAME,
            "jobs/s ours (no-op)",
            "-",
            ours["jobs_per_s"],
            None,
            f"({noop['jobs_per_s']:.0f})",
        ),
    ]
    if profile:
        out = common.LOG_DIR / "overhead-profile.txt"
        run_ours(profile_jobs, concurrency, profile_to=out)
        if out.exists() and out.stat().st_size:
            summary = summarise_profile(out)
            print_profile(summary, profile_jobs)
            common.print_json(
                f"{NAME}.profile",
                {"jobs": profile_jobs, **{k: summary[k][:12] for k in ("by_package", "self")}},
            )
        else:
            print("profile: py-spy wrote nothing (is it installed? pip install py-spy)")
    return goals


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=None, help="jobs per side (10,000)")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="also sample ours with py-spy")
    parser.add_argument("--profile-jobs", type=int, default=2000)
    parser.add_argument(
        "--what-if", action="store_true", help="also run both with synchronous_commit=off"
    )
    args = parser.parse_args(argv)
    common.log_to_file(NAME)
    jobs = args.jobs or (1000 if args.quick else 10_000)
    run(
        jobs=jobs,
        concurrency=args.concurrency,
        profile=args.profile,
        profile_jobs=min(args.profile_jobs, jobs) if args.quick else args.profile_jobs,
        what_if=args.what_if,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
