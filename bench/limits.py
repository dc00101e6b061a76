"""Provider limits: a batch paced by a model's requests-per-minute limit, against a provider
that enforces the same limit, beside the same batch with no limit set.

    python -m bench.limits [--rows 3000] [--rpm 600] [--latency 0.3] [--scale 10]
                           [--workers 2] [--concurrency N] [--poll S] [--runs R] [--quick]

One model, `openai/bench`, served by a local OpenAI-compatible server (bench.common.ModelServer,
asyncio, in its own process) that answers after `latency` seconds and enforces `rpm` requests
per minute itself, as a provider does: a request that would make more than `rpm` answered
requests in the last minute (a sliding window; refused requests do not count) is answered 429
at once, with a Retry-After of the seconds until the oldest of them leaves the window. Two
`procrastinate --app=tasks.app worker` processes take a batch of `rows` rows, queued in one
transaction through the dashboard's use-case (tasks.batches.submit_batch). Runs, each on a
fresh database with a fresh server:

- `limit set`: the workers start with LLMJOBS_MODEL_LIMITS=openai/bench=rpm:<rpm>;
- `no limit`: the same batch with no limit; the workers meet the provider's 429s (each pauses
  the model for every worker for its Retry-After, and the job is retried after at least that).

Figures, per run: the minimum drain time (rows ÷ rpm minutes: the rate the limit allows over a
long batch); the drain time by the database's clock, from the batch's commit (when its jobs
become visible to the workers) to its last job's `succeeded` or `failed` event, and its ratio to
the minimum; the calls that reached the server, its 429s and their share of the calls; the most
calls, and the most answered ones, the server saw in any window of its minute, against the
limit; the jobs that failed and the attempts spent; how busy the machine was. For `limit set`,
also the pace the workers' buckets allow (llmjobs_limit_rates of migration 0017, read from the
database), the drain that pace gives, and the time from the fetch that took a call's capacity
to the call's arrival at the server. Goals (`limit set`): drain ≤ 1.10 × the minimum, 429s ≤ 1 %
of the calls.

Time scale. `--scale S` (default 10: about two minutes in all) shortens every minute by S: the
limit's minute (LLMJOBS_LIMIT_MINUTE=60/S for the workers), the server's window (60/S s), and
with them the minimum drain time and the requests per second (rpm × S / 60). The workers' other
clocks are scaled with it: the poll interval (LLMJOBS_POLL_INTERVAL=0.5/S, as the product's
0.5 s is to its 2-second burst; `--poll` to set it), the retry backoff's base and cap
(LLMJOBS_RETRY_BASE=5/S, LLMJOBS_RETRY_CAP=300/S; the server's Retry-After is in scaled seconds
already). Not scaled: the rows, the rpm, the answer time (`--latency`: a call takes as long at
every scale, so the calls in flight grow with S), the heartbeat, and the second migration 0017
adds to the minute (its buckets keep any window of the minute plus one second under the limit,
for calls that reach the provider a little after their fetch). That second weighs S times more
in a shortened minute: the buckets' pace, (rpm - burst + 1) requests per minute plus a second,
puts the drain at 1.05 × the minimum at scale 1 and 1.21 × at scale 10 by itself, so only small
scales can meet the goal; `--scale 1` (about ten minutes) runs in real time. The worker
concurrency is three times what the limit's pace needs at the answer time (rpm × S / 60 ×
latency), at least the product's default of 10, per worker (`--concurrency`).

Before each batch, the workers run as many calls as they have slots to another model (warm-up:
litellm's set-up on first use), which the server counts apart. Logs of the processes go to LOG_DIR.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import sys
from dataclasses import dataclass
from typing import Any

from bench import common
from bench.common import Goal

NAME = "limits"
MODEL = "openai/bench"
WARM_UP_MODEL = "openai/bench-warm-up"
TEMPLATE = "Summarise item {{n}} in one line"
MINUTE = 60.0  # seconds of an unscaled minute
POLL = 0.5  # the product's LLMJOBS_POLL_INTERVAL
RETRY_BASE, RETRY_CAP = 5.0, 300.0  # the product's LLMJOBS_RETRY_BASE and LLMJOBS_RETRY_CAP
RUNS = ("limit set", "no limit")
LAGS = ("lag_p50_ms", "lag_p99_ms", "lag_max_ms")


@dataclass
class Setup:
    rows: int
    rpm: int
    latency: float
    scale: float
    workers: int
    concurrency: int
    poll: float

    @property
    def minute(self) -> float:
        return MINUTE / self.scale

    @property
    def minimum_s(self) -> float:
        return self.rows / self.rpm * self.minute


def default_concurrency(rpm: int, latency: float, scale: float, workers: int) -> int:
    """Slots per worker: three times the calls in flight at the limit's pace, at least 10."""
    per_second = rpm * scale / MINUTE
    return max(10, math.ceil(3 * per_second * latency / workers))


def most_in_window(times: list[float], window: float) -> int:
    """The most of `times` (sorted) in any `window` seconds."""
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


# --- one run --------------------------------------------------------------------------------


def _wait_outputs(url: str, model: str, count: int, timeout: float) -> None:
    def done() -> bool:
        with common.connect(url) as conn:
            return (
                conn.execute(
                    "SELECT count(*) AS n FROM llm_outputs WHERE model = %s "
                    "AND status IN ('completed', 'failed')",
                    (model,),
                ).fetchone()["n"]
                >= count
            )

    common.wait_for(done, timeout, f"{count} outputs of {model} done", every=0.25)


def _warm_up(url: str, pool: Any, user: Any, setup: Setup) -> None:
    """Calls to another model, as many as the workers' slots (the first worker to fetch takes
    only its own): litellm's set-up on first use is not the batch's."""
    from tasks.outputs import submit_many

    count = setup.workers * setup.concurrency
    contexts = [{"n": i} for i in range(count)]
    submit_many(pool, user=user, template=TEMPLATE, model=WARM_UP_MODEL, contexts=contexts)
    _wait_outputs(url, WARM_UP_MODEL, count, timeout=120)


def _drain(url: str, batch_id: int, committed: float) -> dict[str, Any]:
    """The batch's drain by the database's clock: from `committed` (read just after the batch's
    transaction committed, when its jobs became visible) to its last job's end; the time from
    its transaction's start (its jobs' `deferred` events) to the commit; its outcomes and the
    attempts spent."""
    with common.connect(url) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM min(e.at) FILTER (WHERE e.type = 'deferred'))::float8"
            "         AS queued,"
            "       extract(epoch FROM max(e.at) FILTER"
            "         (WHERE e.type IN ('succeeded', 'failed')))::float8 AS finished"
            "  FROM procrastinate_events AS e"
            "  JOIN llm_outputs AS o ON o.job_id = e.job_id"
            " WHERE o.batch_id = %s",
            (batch_id,),
        ).fetchone()
        outcome = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed') AS completed,"
            "       count(*) FILTER (WHERE status = 'failed') AS failed,"
            "       coalesce(sum(attempts), 0)::int AS attempts"
            "  FROM llm_outputs WHERE batch_id = %s",
            (batch_id,),
        ).fetchone()
        paused = conn.execute(
            "SELECT count(*) AS n FROM llmjobs_rate_limited WHERE model = %s", (MODEL,)
        ).fetchone()["n"]
    return {
        "drain_s": row["finished"] - committed,
        "transaction_s": committed - row["queued"],
        **outcome,
        "pauses": paused,
    }


def _pace(url: str, setup: Setup) -> dict[str, float] | None:
    """The burst and the rate (requests a second) the model's limit lets through, as the
    workers' fetch computes them; None without a limit."""
    with common.connect(url) as conn:
        row = conn.execute(
            "SELECT r.request_burst AS burst, r.request_rate AS rate"
            "  FROM llmjobs_model_limits AS l,"
            "       llmjobs_limit_rates(l, %s, 256) AS r"
            " WHERE l.pattern = %s",
            (setup.minute, MODEL),
        ).fetchone()
    return dict(row) if row else None


def _arrivals(server: common.ModelServer) -> list[tuple[float, int, str]]:
    """The batch model's calls at the server, in order: (Unix time, status, prompt)."""
    name = MODEL.removeprefix("openai/")
    return sorted(
        (t, status, prompt) for t, model, status, prompt in server.arrivals() if model == name
    )


def _server_figures(arrivals: list[tuple[float, int, str]], setup: Setup) -> dict[str, Any]:
    calls = [t for t, _, _ in arrivals]
    answered = [t for t, status, _ in arrivals if status == 200]
    refused = len(calls) - len(answered)
    return {
        "calls": len(calls),
        "rate_limited": refused,
        "rate_limited_share": refused / len(calls) if calls else 0.0,
        "most_calls_in_window": most_in_window(calls, setup.minute),
        "most_answered_in_window": most_in_window(answered, setup.minute),
    }


def _lag(url: str, batch_id: int, arrivals: list[tuple[float, int, str]]) -> dict[str, float]:
    """From the fetch that took a call's capacity (llmjobs_model_calls.started_at) to the call's
    arrival at the server: p50, p99 and max in ms, over the calls of jobs run once."""
    with common.connect(url) as conn:
        rows = conn.execute(
            "SELECT o.context->>'n' AS n, extract(epoch FROM c.started_at)::float8 AS t"
            "  FROM llm_outputs AS o JOIN llmjobs_model_calls AS c ON c.job_id = o.job_id"
            " WHERE o.batch_id = %s AND o.attempts = 1",
            (batch_id,),
        ).fetchall()
    taken = {TEMPLATE.replace("{{n}}", r["n"]): r["t"] for r in rows}
    lags = [t - taken[prompt] for t, _, prompt in arrivals if prompt in taken]
    found = common.summary_ms(lags)
    return {
        "lag_p50_ms": found["p50_ms"],
        "lag_p99_ms": found["p99_ms"],
        "lag_max_ms": found["max_ms"],
    }


def _one(run: str, setup: Setup) -> dict[str, Any]:
    from db.pool import sync_pool
    from tasks import accounts, batches

    server = common.ModelServer(setup.latency, rpm=setup.rpm, window=setup.minute)
    try:
        with common.fresh_database() as url:
            settings = {
                "OPENAI_API_BASE": server.base_url,
                "OPENAI_API_KEY": "bench-not-a-key",
                "LLMJOBS_WORKER_CONCURRENCY": str(setup.concurrency),
                "LLMJOBS_LIMIT_MINUTE": f"{setup.minute:g}",
                "LLMJOBS_POLL_INTERVAL": f"{setup.poll:g}",
                "LLMJOBS_RETRY_BASE": f"{RETRY_BASE / setup.scale:g}",
                "LLMJOBS_RETRY_CAP": f"{RETRY_CAP / setup.scale:g}",
                # the workers import this tree's code, whatever the virtualenv's install points at
                "PYTHONPATH": str(common.ROOT),
            }
            env = common.bench_env(url, **settings)
            env.pop("LLMJOBS_MODEL_LIMITS", None)  # the limits are the run's alone
            if run == "limit set":
                env["LLMJOBS_MODEL_LIMITS"] = f"{MODEL}=rpm:{setup.rpm}"
            label = run.replace(" ", "-")
            procs = [
                common.spawn(
                    [common.PROCRASTINATE, "--app=tasks.app", "worker"],
                    env,
                    f"limits-{label}-{i}",
                )
                for i in range(setup.workers)
            ]
            pool = sync_pool(url, max_size=2)
            try:
                common.wait_for(
                    lambda: common.workers_registered(url) >= setup.workers,
                    90,
                    "workers registered",
                    0.1,
                )
                user = accounts.create_user(pool, "bench")
                _warm_up(url, pool, user, setup)
                rows = [{"n": i} for i in range(setup.rows)]
                meter = common.CpuMeter(workers=[p.pid for p in procs], model=[server.proc.pid])
                meter.start()
                batch = batches.submit_batch(
                    pool, user=user, template=TEMPLATE, model=MODEL, rows=rows, name=NAME
                )
                committed = common.db_now(url)
                _wait_outputs(url, MODEL, setup.rows, timeout=5 * setup.minimum_s + 300)
                meter.stop()
                arrivals = _arrivals(server)
                figures = {
                    "machine_busy": meter.machine_busy,
                    "worker_cpu_ms_per_job": meter.seconds.get("workers", 0.0) * 1000 / setup.rows,
                    **_drain(url, batch.id, committed),
                    **_server_figures(arrivals, setup),
                }
                pace = _pace(url, setup)
                if pace is not None:
                    figures.update(_lag(url, batch.id, arrivals))
            finally:
                for proc in procs:
                    common.stop(proc)
                pool.close()
    finally:
        server.stop()
    figures["ratio"] = figures["drain_s"] / setup.minimum_s
    if pace is not None:
        figures["paced_rate"] = pace["rate"]
        figures["paced_drain_s"] = (setup.rows - pace["burst"]) / pace["rate"] + setup.latency
    return figures


# --- the report -----------------------------------------------------------------------------


def _report(setup: Setup, results: dict[str, dict[str, Any]]) -> None:
    per_second = setup.rpm / setup.minute
    common.print_table(
        f"{setup.rows:,} rows to one model at {setup.rpm} requests per minute (a minute of "
        f"{setup.minute:g} s: scale {setup.scale:g}, {per_second:g} requests/s), answers in "
        f"{setup.latency:g} s, {setup.workers} workers × {setup.concurrency}, poll "
        f"{setup.poll:g} s",
        [
            "run",
            "minimum s",
            "drain s",
            "÷ minimum",
            "calls",
            "429s",
            "429 share",
            "most calls in a window",
            "most answered in a window",
            "limit",
            "failed",
            "attempts",
            "pace of the buckets /s",
            "drain at that pace s",
            "fetch → server ms p50/p99/max",
            "machine busy",
        ],
        [
            [
                run,
                setup.minimum_s,
                f["drain_s"],
                f["ratio"],
                f["calls"],
                f["rate_limited"],
                f"{f['rate_limited_share']:.1%}",
                f["most_calls_in_window"],
                f["most_answered_in_window"],
                setup.rpm,
                f["failed"],
                f["attempts"],
                f.get("paced_rate", float("nan")),
                f.get("paced_drain_s", float("nan")),
                "/".join(f"{f[k]:.0f}" for k in LAGS) if LAGS[0] in f else "-",
                f"{f['machine_busy']:.0%}",
            ]
            for run, f in results.items()
        ],
    )
    common.print_json(
        NAME,
        {
            "rows": setup.rows,
            "rpm": setup.rpm,
            "latency_s": setup.latency,
            "scale": setup.scale,
            "minute_s": setup.minute,
            "workers": setup.workers,
            "concurrency": setup.concurrency,
            "poll_s": setup.poll,
            "minimum_s": round(setup.minimum_s, 3),
            **{
                run.replace(" ", "_"): {
                    k: round(v, 4) if isinstance(v, float) else v for k, v in f.items()
                }
                for run, f in results.items()
            },
        },
    )


def run(
    *,
    rows: int = 3000,
    rpm: int = 600,
    latency: float = 0.3,
    scale: float = 10.0,
    workers: int = 2,
    concurrency: int | None = None,
    poll: float | None = None,
    runs: tuple[str, ...] = RUNS,
) -> list[Goal]:
    setup = Setup(
        rows=rows,
        rpm=rpm,
        latency=latency,
        scale=scale,
        workers=workers,
        concurrency=concurrency or default_concurrency(rpm, latency, scale, workers),
        poll=poll if poll is not None else POLL / scale,
    )
    results: dict[str, dict[str, Any]] = {}
    for name in runs:
        print(f"  {name} ({common.load_average()})", flush=True)
        results[name] = _one(name, setup)
    _report(setup, results)
    goals: list[Goal] = []
    if ours := results.get("limit set"):
        goals += [
            common.at_most(NAME, "limit set: drain ÷ minimum", ours["ratio"], 1.10),
            common.at_most(NAME, "limit set: 429s ÷ calls", ours["rate_limited_share"], 0.01),
            Goal(
                NAME,
                "limit set: drain ÷ drain at the buckets' pace",
                "-",
                ours["drain_s"] / ours["paced_drain_s"],
                None,
            ),
        ]
    if other := results.get("no limit"):
        goals += [
            Goal(NAME, "no limit: drain ÷ minimum", "-", other["ratio"], None),
            Goal(NAME, "no limit: 429s ÷ calls", "-", other["rate_limited_share"], None),
            Goal(NAME, "no limit: jobs failed", "-", other["failed"], None),
        ]
    return goals


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__)
    parser.add_argument("--rows", type=int, default=None, help="rows of the batch (3,000)")
    parser.add_argument("--rpm", type=int, default=600, help="the model's requests per minute")
    parser.add_argument("--latency", type=float, default=0.3, help="answer time in seconds")
    parser.add_argument(
        "--scale", type=float, default=10.0, help="minutes last 60/SCALE seconds (1: real time)"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=None, help="slots per worker")
    parser.add_argument("--poll", type=float, default=None, help="poll interval (0.5/SCALE s)")
    parser.add_argument("--runs", default=",".join(RUNS), help="'limit set', 'no limit' or both")
    args = parser.parse_args(argv)
    runs = tuple(r.strip() for r in args.runs.split(",") if r.strip())
    if not runs or set(runs) - set(RUNS):
        parser.error("runs: 'limit set', 'no limit'")
    if not 1 <= args.scale <= 60:
        parser.error("--scale: from 1 to 60 (a limit's minute lasts at least a second)")
    common.log_to_file(NAME)
    run(
        rows=args.rows or (1200 if args.quick else 3000),
        rpm=args.rpm,
        latency=args.latency,
        scale=args.scale,
        workers=args.workers,
        concurrency=args.concurrency,
        poll=args.poll,
        runs=runs,
    )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
