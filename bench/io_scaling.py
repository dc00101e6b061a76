"""I/O scaling: how close worker processes come to the throughput a slow model allows.

    python -m bench.io_scaling [--jobs 4000] [--delay 0.5] [--concurrency 200] [--quick]

A local OpenAI-compatible server answers every call after `delay` seconds (0.5 s). With 200 calls
in flight the ceiling is 200 / 0.5 = 400 jobs/s. Runs, each on a fresh database:

- ours, one `procrastinate --app=tasks.app worker` with LLMJOBS_WORKER_CONCURRENCY=200
  (goal >= 0.60 of the ceiling);
- ours, two workers with 100 each (goal >= 0.80);
- baseline: a plain procrastinate task that only calls litellm.acompletion, one process,
  concurrency 200, same worker settings;
- the model calls alone, in one process (200 at a time) and in two (100 each): the worker's own
  call (`tasks.llm.calls.call_model`, through litellm, on the worker's event loop set-up) with no
  queue and no database. What they reach is the most a worker could, on this machine at that
  moment; ours is given as a share of it too;
- for information, ours with one worker again against a server whose answers take 0.4 to 0.6 s
  (the same mean). With every answer taking exactly 0.5 s, the calls of a busy worker move in
  waves: answers arrive together, the event loop handles them one after another, and the next
  calls all leave at the end of that burst, so the worker waits for the burst on top of the 0.5 s.

Each run first warms its workers up (one round of jobs), then bulk-queues the jobs and times
from the commit to the last job's end. CPU per job is the workers' user + system time over the
measured jobs (psutil), with PostgreSQL's and the model server's beside it; "machine busy" is the
share of all the machine's cores that was not idle meanwhile (near 100 %: the run was bound by
CPU, not by the model's latency).

The model server is an asyncio one of our own (bench.common.ModelServer), in its own process: the
threaded test provider (tests/support/provider.py) cannot take 200 connections at once (its
listen backlog is 5, one thread per connection) and managed a few requests per second here.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench import common
from bench.common import Goal
from tasks.config import LLM_TASK

NAME = "io_scaling"
MODEL = "openai/bench"
TEMPLATE = "Summarise item {{n}} in one line"
RAW_TASK = "bench_raw_call"
SPREAD = 0.2  # the varied-latency run: answers after delay × (1 ± SPREAD)


@dataclass
class Outcome:
    label: str
    workers: int
    concurrency: int
    jobs: int
    seconds: float
    failed: int
    cpu_ms_per_job: float
    postgres_ms_per_job: float
    model_ms_per_job: float
    machine_busy: float  # share of all the machine's cores in use during the run
    ceiling: float

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds

    @property
    def of_ceiling(self) -> float:
        return self.jobs_per_s / self.ceiling


# --- queueing -------------------------------------------------------------------------------


def _queue_ours(url: str, jobs: int, first: int = 0) -> tuple[int, float]:
    """Queue jobs through submit_many; (highest job id before them, commit time)."""
    from db.pool import sync_pool
    from tasks import accounts
    from tasks.outputs import submit_many

    pool = sync_pool(url, max_size=2)
    try:
        user = accounts.ensure_user(pool, "bench")
        since = _last_job_id(url)
        contexts = [{"n": first + i} for i in range(jobs)]
        submit_many(pool, user=user, template=TEMPLATE, model=MODEL, contexts=contexts)
        return since, time.time()
    finally:
        pool.close()


def _queue_raw(url: str, jobs: int, first: int = 0) -> tuple[int, float]:
    """Queue baseline jobs in one statement; (highest job id before them, commit time)."""
    from procrastinate import SyncPsycopgConnector
    from procrastinate.jobs import Job
    from procrastinate.manager import JobManager

    from tasks.config import QUEUE_PRIORITY

    since = _last_job_id(url)
    batch = [
        Job(
            id=None,
            queue="default",
            priority=QUEUE_PRIORITY["default"],
            lock=None,
            queueing_lock=None,
            task_name=RAW_TASK,
            task_kwargs={"n": first + i},
        )
        for i in range(jobs)
    ]
    with common.connect(url) as conn:
        JobManager(SyncPsycopgConnector()).batch_defer_jobs(jobs=batch, connection=conn)
    return since, time.time()


def _last_job_id(url: str) -> int:
    with common.connect(url) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) AS id FROM procrastinate_jobs").fetchone()[
            "id"
        ]


def _failed(url: str, task: str, since: int) -> int:
    with common.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM procrastinate_jobs "
            "WHERE id > %s AND task_name = %s AND status <> 'succeeded'",
            (since, task),
        ).fetchone()["n"]


def _wait_drained(url: str, task: str, since: int, jobs: int, timeout: float) -> None:
    common.wait_for(
        lambda: common.jobs_finished(url, task, since) >= jobs,
        timeout,
        f"{jobs} jobs done",
        every=0.1,
    )


# --- one run --------------------------------------------------------------------------------


def _measure(
    label: str,
    *,
    workers: int,
    concurrency: int,
    jobs: int,
    delay: float,
    server: common.ModelServer,
    raw: bool,
) -> Outcome:
    with common.fresh_database() as url:
        env = common.bench_env(
            url,
            OPENAI_API_BASE=server.base_url,
            LLMJOBS_WORKER_CONCURRENCY=str(concurrency),
        )
        if raw:
            args = [sys.executable, "-m", "bench.io_scaling", "raw-worker"]
            queue, task = _queue_raw, RAW_TASK
        else:
            args = [str(common.PROCRASTINATE), "--app=tasks.app", "worker"]
            queue, task = _queue_ours, LLM_TASK
        procs = [
            common.spawn(args, env, f"io-{label.replace(' ', '-')}-{i}") for i in range(workers)
        ]
        try:
            common.wait_for(
                lambda: common.workers_registered(url) >= workers, 90, "workers registered", 0.1
            )
            # Warm-up: imports on first use, HTTP connections, prepared statements.
            warm = workers * concurrency
            since, _ = queue(url, warm)
            _wait_drained(url, task, since, warm, timeout=120)
            meter = common.CpuMeter(workers=[p.pid for p in procs], model=[server.proc.pid])
            meter.start()
            since, committed = queue(url, jobs, first=warm)
            _wait_drained(url, task, since, jobs, timeout=jobs / 20 + 120)
            meter.stop()
            seconds = common.last_finish_time(url, task, since) - committed
            failed = _failed(url, task, since)
        finally:
            for proc in procs:
                common.stop(proc)
    return _outcome(label, workers, concurrency, jobs, seconds, failed, meter, delay)


def _outcome(
    label: str,
    processes: int,
    concurrency: int,
    jobs: int,
    seconds: float,
    failed: int,
    meter: common.CpuMeter,
    delay: float,
) -> Outcome:
    def per_job(role: str) -> float:
        return meter.seconds.get(role, 0.0) * 1000 / jobs

    return Outcome(
        label=label,
        workers=processes,
        concurrency=concurrency,
        jobs=jobs,
        seconds=seconds,
        failed=failed,
        cpu_ms_per_job=per_job("workers"),
        postgres_ms_per_job=per_job("postgres"),
        model_ms_per_job=per_job("model"),
        machine_busy=meter.machine_busy,
        ceiling=processes * concurrency / delay,
    )


def _measure_calls(
    label: str, *, processes: int, concurrency: int, jobs: int, delay: float, server: Any
) -> Outcome:
    """The model calls alone: `processes` processes, each making its share of `jobs` calls,
    `concurrency` at a time, all started together once every one has warmed up."""
    env = {**os.environ, "OPENAI_API_BASE": server.base_url, "PYTHONUNBUFFERED": "1"}
    share = jobs // processes
    args = [sys.executable, "-m", "bench.io_scaling", "model-calls", str(share), str(concurrency)]
    procs = [
        subprocess.Popen(
            args, env=env, cwd=common.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{label}: a calling process did not start")
        meter = common.CpuMeter(workers=[p.pid for p in procs], model=[server.proc.pid])
        meter.start()
        started = time.perf_counter()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        answers = [proc.stdout.readline().strip() for proc in procs]
        seconds = time.perf_counter() - started
        meter.stop()
    finally:
        for proc in procs:
            common.stop(proc)
    if not all(a.isdigit() for a in answers):
        raise RuntimeError(f"{label}: a calling process ended without its count: {answers}")
    failed = sum(int(a) for a in answers)
    return _outcome(label, processes, concurrency, share * processes, seconds, failed, meter, delay)


def run(*, jobs: int = 4000, delay: float = 0.5, concurrency: int = 200) -> list[Goal]:
    server = common.ModelServer(delay)
    saved = os.environ.get("OPENAI_API_BASE")
    os.environ["OPENAI_API_BASE"] = server.base_url  # submit checks the model is usable
    try:

        def measure(label: str, workers: int, raw: bool = False) -> Outcome:
            per_worker = concurrency // workers
            return _measure(
                label,
                workers=workers,
                concurrency=per_worker,
                jobs=jobs,
                delay=delay,
                server=server,
                raw=raw,
            )

        def calls_alone(processes: int) -> Outcome:
            return _measure_calls(
                f"model calls alone, {processes} process{'es' if processes > 1 else ''}",
                processes=processes,
                concurrency=concurrency // processes,
                jobs=jobs,
                delay=delay,
                server=server,
            )

        baseline = measure("baseline: procrastinate + litellm", 1, raw=True)
        alone_one = calls_alone(1)
        one = measure("ours: 1 worker", 1)
        alone_two = calls_alone(2)
        two = measure("ours: 2 workers", 2)
        server.stop()
        # The same mean latency, spread as a real model's is: calls no longer move in lockstep.
        server = common.ModelServer(delay, spread=SPREAD)
        os.environ["OPENAI_API_BASE"] = server.base_url
        low, high = delay * (1 - SPREAD), delay * (1 + SPREAD)
        varied = measure(f"ours: 1 worker, answers in {low:g}–{high:g} s", 1)
    finally:
        server.stop()
        if saved is None:
            os.environ.pop("OPENAI_API_BASE", None)
        else:
            os.environ["OPENAI_API_BASE"] = saved
    outcomes = [baseline, alone_one, one, alone_two, two, varied]
    common.print_table(
        f"I/O scaling: model answers after {delay} s, {jobs} jobs per run",
        [
            "run",
            "workers x conc.",
            "jobs/s",
            "÷ ceiling",
            "seconds",
            "CPU ms/job: workers",
            "postgres",
            "model server",
            "machine busy",
            "not ok",
        ],
        [
            [
                o.label,
                f"{o.workers} x {o.concurrency}",
                o.jobs_per_s,
                f"{o.of_ceiling:.2f} of {o.ceiling:.0f}",
                o.seconds,
                o.cpu_ms_per_job,
                o.postgres_ms_per_job,
                o.model_ms_per_job,
                f"{o.machine_busy:.0%}",
                o.failed,
            ]
            for o in outcomes
        ],
    )
    common.print_json(
        NAME,
        {
            "jobs": jobs,
            "delay_s": delay,
            **{
                key: {
                    "jobs_per_s": round(o.jobs_per_s, 1),
                    "of_ceiling": round(o.of_ceiling, 3),
                    "cpu_ms_per_job": round(o.cpu_ms_per_job, 2),
                    "postgres_cpu_ms_per_job": round(o.postgres_ms_per_job, 2),
                    "machine_busy": round(o.machine_busy, 3),
                    "failed": o.failed,
                }
                for key, o in (
                    ("baseline", baseline),
                    ("calls_alone_one_process", alone_one),
                    ("one_worker", one),
                    ("calls_alone_two_processes", alone_two),
                    ("two_workers", two),
                    ("one_worker_varied_latency", varied),
                )
            },
            "one_worker_of_calls_alone": round(one.jobs_per_s / alone_one.jobs_per_s, 3),
            "two_workers_of_calls_alone": round(two.jobs_per_s / alone_two.jobs_per_s, 3),
        },
    )
    return [
        common.at_least(NAME, "1 worker x 200: jobs/s ÷ 400", one.of_ceiling, 0.60),
        common.at_least(NAME, "2 workers x 100: jobs/s ÷ 400", two.of_ceiling, 0.80),
        Goal(NAME, "baseline 1 x 200: jobs/s ÷ 400", "-", baseline.of_ceiling, None),
        Goal(NAME, "calls alone 1 x 200: calls/s ÷ 400", "-", alone_one.of_ceiling, None),
        Goal(NAME, "calls alone 2 x 100: calls/s ÷ 400", "-", alone_two.of_ceiling, None),
        Goal(NAME, "1 x 200: ours ÷ calls alone", "-", one.jobs_per_s / alone_one.jobs_per_s, None),
        Goal(NAME, "2 x 100: ours ÷ calls alone", "-", two.jobs_per_s / alone_two.jobs_per_s, None),
        Goal(NAME, "1 x 200, varied latency: ÷ 400", "-", varied.of_ceiling, None),
        Goal(
            NAME,
            "worker CPU ms/job ours (baseline)",
            "-",
            one.cpu_ms_per_job,
            None,
            f"({baseline.cpu_ms_per_job:.1f})",
        ),
    ]


# --- the model calls alone -----------------------------------------------------------------


def model_calls(calls: int, concurrency: int) -> None:
    """Make `calls` calls to MODEL through tasks.llm.calls.call_model, `concurrency` at a time, in
    a process set up as a worker's is (its event loop's executor, a frozen GC). Prints "ready"
    after one warm-up round, waits for a line on stdin, then prints how many calls failed."""
    from tasks.llm.calls import call_model, install_call_executor

    async def make(count: int) -> int:
        slots = asyncio.Semaphore(concurrency)

        async def one(n: int) -> None:
            async with slots:
                message = {"role": "user", "content": f"Summarise item {n} in one line"}
                await call_model(MODEL, [message])

        answers = await asyncio.gather(*(one(n) for n in range(count)), return_exceptions=True)
        return sum(isinstance(a, BaseException) for a in answers)

    async def main() -> None:
        install_call_executor(asyncio.get_running_loop())
        await make(concurrency)  # warm-up: imports on first use, HTTP connections
        # As a worker does once started: what lives as long as the process leaves the GC's sight.
        gc.collect()
        gc.freeze()
        print("ready", flush=True)
        sys.stdin.readline()
        print(await make(calls), flush=True)

    asyncio.run(main())


# --- the baseline worker --------------------------------------------------------------------


def raw_worker() -> None:
    """A plain procrastinate worker whose only task calls litellm.acompletion (the baseline)."""
    import litellm
    import procrastinate

    from tasks.config import get_settings
    from tasks.worker.app import app as ours

    concurrency = get_settings().worker_concurrency
    base = os.environ["OPENAI_API_BASE"]
    raw_app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=os.environ["DATABASE_URL"], min_size=1, max_size=max(4, concurrency + 2)
        )
    )

    @raw_app.task(name=RAW_TASK)
    async def raw_call(n: int) -> None:
        await litellm.acompletion(
            model=MODEL,
            messages=[{"role": "user", "content": f"Summarise item {n} in one line"}],
            api_base=base,
            api_key="not-needed",
            timeout=60,
            max_retries=0,
        )

    options: dict[str, Any] = {
        k: v for k, v in ours.worker_defaults.items() if k != "worker_middleware"
    }
    raw_app.run_worker(**{**options, "concurrency": concurrency})


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["raw-worker"]:
        raw_worker()
        return 0
    if argv[:1] == ["model-calls"]:
        model_calls(int(argv[1]), int(argv[2]))
        return 0
    parser = common.base_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=None, help="jobs per run (4,000)")
    parser.add_argument("--delay", type=float, default=0.5, help="model latency in seconds")
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args(argv)
    common.log_to_file(NAME)
    run(
        jobs=args.jobs or (800 if args.quick else 4000),
        delay=args.delay,
        concurrency=args.concurrency,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
