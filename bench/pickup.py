"""Pickup latency: from a submit's commit to its job's start in a worker.

    python -m bench.pickup [--rates 20,200] [--seconds 10] [--quick]

One `procrastinate --app=tasks.app worker` with the default settings (LISTEN/NOTIFY on,
LLMJOBS_POLL_INTERVAL and LLMJOBS_WORKER_CONCURRENCY at their defaults) runs jobs of the
offline model. This process submits at a steady offered rate (open loop: each submit at its
scheduled time, one after the other) and reads, per output, `started_at - created_at`: the
time from the submit's transaction to the worker marking the output processing (in the statement
that fetches its job). created_at is
the transaction's start, so the figure also holds the submit's own ~2 ms: an upper bound of
commit-to-start. Goal: p50 <= 10 ms.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bench import common
from bench.common import Goal

NAME = "pickup"
MODEL = "offline/echo"
TEMPLATE = "Explain {{concept}} to a beginner"


def _started(url: str, ids: list[int]) -> int:
    with common.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM llm_outputs WHERE id = ANY(%s) AND started_at IS NOT NULL",
            (ids,),
        ).fetchone()["n"]


def _pickups(url: str, ids: list[int]) -> tuple[list[float], list[float]]:
    """Per output: seconds to our start (started_at) and to procrastinate's fetch of its job."""
    with common.connect(url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM o.started_at - o.created_at)::float8 AS ours, "
            "       extract(epoch FROM e.at - o.created_at)::float8 AS fetched "
            "  FROM llm_outputs AS o "
            "  JOIN procrastinate_events AS e ON e.job_id = o.job_id AND e.type = 'started' "
            " WHERE o.id = ANY(%s) AND o.started_at IS NOT NULL",
            (ids,),
        ).fetchall()
    return [r["ours"] for r in rows], [r["fetched"] for r in rows]


def _offer(pool: Any, user: Any, rate: float, seconds: float, tag: str) -> tuple[list[int], float]:
    """Submit at `rate` per second for `seconds`; (output ids, achieved rate)."""
    from tasks.outputs import submit

    count = int(rate * seconds)
    ids = []
    started = time.perf_counter()
    for i in range(count):
        wait = started + i / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sub = submit(
            pool, user=user, template=TEMPLATE, model=MODEL, context={"concept": f"{tag} {i}"}
        )
        ids.append(sub.output_id)
    return ids, count / (time.perf_counter() - started)


def run(*, rates: tuple[float, ...] = (20, 200), seconds: float = 10) -> list[Goal]:
    from db.pool import sync_pool
    from tasks import accounts

    results = []
    with common.fresh_database() as url:
        pool = sync_pool(url, max_size=2)
        worker = common.spawn(
            [common.PROCRASTINATE, "--app=tasks.app", "worker"],
            common.bench_env(url),
            "pickup-worker",
        )
        try:
            user = accounts.create_user(pool, "bench")
            common.wait_for(lambda: common.workers_registered(url) >= 1, 90, "worker registered")
            warm, _ = _offer(pool, user, 20, 1, "warm-up")
            common.wait_for(lambda: _started(url, warm) == len(warm), 60, "warm-up jobs started")
            time.sleep(1)
            for rate in rates:
                ids, achieved = _offer(pool, user, rate, seconds, f"rate {rate}")
                common.wait_for(
                    lambda ids=ids: _started(url, ids) == len(ids), 300, f"jobs at {rate}/s started"
                )
                ours, fetched = _pickups(url, ids)
                results.append(
                    (rate, achieved, common.summary_ms(ours), common.summary_ms(fetched))
                )
                time.sleep(1)
        finally:
            common.stop(worker)
            pool.close()
    common.print_table(
        "Pickup latency: submit transaction to job start, one worker, LISTEN/NOTIFY",
        [
            "offered jobs/s",
            "achieved",
            "n",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "mean ms",
            "p50 ms to fetch",
        ],
        [
            [rate, achieved, *figures.values(), fetched["p50_ms"]]
            for rate, achieved, figures, fetched in results
        ],
    )
    print(
        "'to fetch': to procrastinate's 'started' event (the fetch, whose statement also marks "
        "the output processing)"
    )
    common.print_json(
        NAME,
        {
            f"rate_{rate:g}": {"achieved": round(a, 1), **f, "p50_ms_to_fetch": g["p50_ms"]}
            for rate, a, f, g in results
        },
    )
    return [
        common.at_most(NAME, f"pickup p50 at {rate:g} jobs/s", figures["p50_ms"], 10, "ms")
        for rate, _, figures, _ in results
    ]


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__)
    parser.add_argument("--rates", default="20,200", help="offered jobs/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per rate (10)")
    args = parser.parse_args(argv)
    common.log_to_file(NAME)
    rates = tuple(float(r) for r in args.rates.split(","))
    run(rates=rates, seconds=args.seconds or (3 if args.quick else 10))
    return 0


if __name__ == "__main__":
    sys.exit(main())
