"""Cold start: how long the dashboard and a worker take from launch to being useful.

    python -m bench.cold_start [--repeats 3] [--quick]

- Dashboard: `streamlit run streamlit_app.py` (headless, a free port, DATABASE_URL set,
  LLMJOBS_SINGLE_USER=1) until its first HTTP 200 on `/` and on `/_stcore/health`. (Streamlit
  serves `/` before any page script runs; the script runs when a browser session connects.)
- Worker: a job is queued first, then `procrastinate --app=tasks.app worker` is launched; the
  time to its registration and to the job's start (`started_at` of the output).
- The CLI: `llmjobs submit` (validates the model against the model catalog, queues a job) beside
  `llmjobs show` (reads one output), wall time and peak memory (the child's maximum RSS).
- For reference: importing the worker's modules (`tasks.worker.job`, which imports litellm) and the
  pages' shared module (`dashboard.deps`, which does not) in a fresh interpreter.

Medians over the repeats. Goals: `llmjobs submit` ≤ 0.6 s and ≤ 80 MiB.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from bench import common
from bench.common import Goal

NAME = "cold_start"


def _dashboard(url: str) -> tuple[float, float]:
    """Seconds from launch to the first 200 on / and on /_stcore/health."""
    import httpx

    port = common.free_port()
    started = time.perf_counter()
    proc = common.spawn_dashboard(url, port, "cold-start-streamlit")
    first: dict[str, float] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=1) as client:

            def both_up() -> bool:
                for path in ("/", "/_stcore/health"):
                    if path in first:
                        continue
                    try:
                        if client.get(path).status_code == 200:
                            first[path] = time.perf_counter() - started
                    except httpx.TransportError:
                        pass
                return len(first) == 2

            common.wait_for(both_up, 120, "the dashboard answering", every=0.01)
    finally:
        common.stop(proc)
    return first["/"], first["/_stcore/health"]


def _worker(url: str, pool: object, user: object, index: int) -> tuple[float, float]:
    """Seconds from launching a worker to its registration and to a queued job's start."""
    from tasks.outputs import submit

    queued = submit(
        pool, user=user, template="Say {{n}}", model="offline/echo", context={"n": index}
    )
    launched = time.time()
    proc = common.spawn(
        [common.PROCRASTINATE, "--app=tasks.app", "worker"], common.bench_env(url), "cold-worker"
    )
    try:
        registered = common.wait_for(
            lambda: common.workers_registered(url) >= 1, 120, "worker registered", every=0.01
        )

        def started() -> float | None:
            with common.connect(url) as conn:
                return conn.execute(
                    "SELECT extract(epoch FROM started_at)::float8 AS t FROM llm_outputs "
                    "WHERE id = %s",
                    (queued.output_id,),
                ).fetchone()["t"]

        common.wait_for(lambda: started() is not None, 120, "the queued job started", every=0.01)
        return registered, started() - launched
    finally:
        common.stop(proc)
        common.wait_for(lambda: common.workers_registered(url) == 0, 60, "worker unregistered")


def _cli(url: str, *args: str) -> tuple[float, float, str]:
    """Seconds and peak MiB of one `llmjobs` command, and what it printed. The peak is GNU
    time's (the maximum resident size of the command itself: a child forked from this big
    process would count the parent's pages it shares)."""
    env = {**common.bench_env(url), "PYTHONPATH": str(common.ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", str(common.LLMJOBS), *args],
        env=env,
        cwd=common.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"llmjobs {' '.join(args)} exited {done.returncode}: {done.stderr}")
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    return seconds, peak_kib / 1024, done.stdout


def _import_seconds(module: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        check=True,
        cwd=common.ROOT,
        stderr=subprocess.DEVNULL,  # streamlit warns that no runtime runs: not news here
    )
    return time.perf_counter() - started


def run(*, repeats: int = 3) -> list[Goal]:
    from db.pool import sync_pool
    from tasks import accounts

    with common.fresh_database() as url:
        pool = sync_pool(url, max_size=2)
        try:
            user = accounts.create_user(pool, "local", admin=True)
            dash = [_dashboard(url) for _ in range(repeats)]
            work = [_worker(url, pool, user, i) for i in range(repeats)]
            submits = [
                _cli(
                    url,
                    *("submit", "--template", "Say {{n}}", "--context", f'{{"n": {i}}}'),
                    *("--model", "offline/echo", "--user", "local"),
                )
                for i in range(max(repeats, 5))
            ]
            shown = json.loads(submits[0][2])["output_id"]
            shows = [
                _cli(url, "show", str(shown), "--user", "local") for _ in range(max(repeats, 5))
            ]
        finally:
            pool.close()
    imports = [_import_seconds("tasks.worker.job") for _ in range(repeats)]
    pages = [_import_seconds("dashboard.deps") for _ in range(repeats)]
    bare = [_import_seconds("sys") for _ in range(repeats)]
    figures = {
        "dashboard_root_s": statistics.median(d[0] for d in dash),
        "dashboard_health_s": statistics.median(d[1] for d in dash),
        "worker_registered_s": statistics.median(w[0] for w in work),
        "worker_first_job_s": statistics.median(w[1] for w in work),
        "cli_submit_s": statistics.median(c[0] for c in submits),
        "cli_submit_mib": statistics.median(c[1] for c in submits),
        "cli_show_s": statistics.median(c[0] for c in shows),
        "cli_show_mib": statistics.median(c[1] for c in shows),
        "import_tasks_job_s": statistics.median(imports),
        "import_dashboard_deps_s": statistics.median(pages),
        "bare_interpreter_s": statistics.median(bare),
    }
    common.print_table(
        f"Cold start: median of {repeats} launches (seconds)",
        ["what", "median s", "all runs"],
        [
            ["dashboard: first 200 on /", figures["dashboard_root_s"], _all(d[0] for d in dash)],
            [
                "dashboard: first 200 on /_stcore/health",
                figures["dashboard_health_s"],
                _all(d[1] for d in dash),
            ],
            ["worker: registered", figures["worker_registered_s"], _all(w[0] for w in work)],
            [
                "worker: queued job started",
                figures["worker_first_job_s"],
                _all(w[1] for w in work),
            ],
            ["llmjobs submit (s)", figures["cli_submit_s"], _all(c[0] for c in submits)],
            ["llmjobs submit (peak MiB)", figures["cli_submit_mib"], _all(c[1] for c in submits)],
            ["llmjobs show (s)", figures["cli_show_s"], _all(c[0] for c in shows)],
            ["llmjobs show (peak MiB)", figures["cli_show_mib"], _all(c[1] for c in shows)],
            ["python -c 'import tasks.worker.job'", figures["import_tasks_job_s"], _all(imports)],
            ["python -c 'import dashboard.deps'", figures["import_dashboard_deps_s"], _all(pages)],
            ["python -c 'import sys'", figures["bare_interpreter_s"], _all(bare)],
        ],
    )
    common.print_json(NAME, {k: round(v, 3) for k, v in figures.items()})
    return [
        Goal(NAME, "dashboard to first 200 on /", "-", figures["dashboard_root_s"], None, "s"),
        Goal(NAME, "dashboard to /_stcore/health", "-", figures["dashboard_health_s"], None, "s"),
        Goal(NAME, "worker launch to first job", "-", figures["worker_first_job_s"], None, "s"),
        common.at_most(NAME, "llmjobs submit wall", figures["cli_submit_s"], 0.6, "s"),
        common.at_most(NAME, "llmjobs submit peak memory", figures["cli_submit_mib"], 80, "MiB"),
    ]


def _all(values: object) -> str:
    return ", ".join(f"{v:.2f}" for v in values)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=None, help="launches of each (3)")
    args = parser.parse_args(argv)
    common.log_to_file(NAME)
    run(repeats=args.repeats or (1 if args.quick else 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
