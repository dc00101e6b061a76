"""Submit: how long queueing one job takes, from Python and through the HTTP API, and how fast
bulk submission goes.

    python -m bench.submit_latency [--submits 1000] [--requests 500] [--bulk 10000] [--quick]

- `tasks.outputs.submit` (validate, render, output row + job in one transaction, estimate):
  p50/p99 of 1,000 calls (goals: p50 <= 3 ms, p99 <= 10 ms);
- POST /api/v1/llm_jobs to a real `llmjobs api` (uvicorn) process over one keep-alive
  connection (the standard library's http.client): p50/p99 of 500 requests (rate limit off),
  in a database of its own, so that it too starts from an empty queue;
- `tasks.outputs.submit_many` with 10,000 contexts: jobs/s (goal >= 5,000), median of 3;
- informational: single submits once the bulk runs left tens of thousands of jobs waiting.

No worker runs: the queue only grows.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from bench import common
from bench.common import Goal

NAME = "submit"
MODEL = "offline/echo"
TEMPLATE = "Explain {{concept}} to a beginner"


def _submit_times(pool: Any, user: Any, count: int, offset: int) -> list[float]:
    from tasks.outputs import submit

    times = []
    for i in range(count):
        started = time.perf_counter()
        submit(
            pool, user=user, template=TEMPLATE, model=MODEL, context={"concept": f"c{offset + i}"}
        )
        times.append(time.perf_counter() - started)
    return times


def _api_times(url: str, token: str, count: int) -> list[float]:
    # The standard library's client: httpx spends about 1 ms of CPU per request here, as much as
    # the route's own Python work, and on 2 cores that time would be counted as the API's.
    import http.client
    import json

    port = common.free_port()
    proc = common.spawn(
        [common.LLMJOBS, "api", "--host", "127.0.0.1", "--port", str(port)],
        common.bench_env(url, LLMJOBS_API_RATE_LIMIT="0"),
        "submit-api",
    )
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def request(method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        client.request(method, path, body=body, headers=headers)
        answer = client.getresponse()
        return answer.status, answer.read()  # read whole: the connection is kept alive

    try:

        def up() -> bool:
            try:
                return request("GET", "/healthz")[0] == 200
            except (OSError, http.client.HTTPException):
                client.close()  # the next request connects again
                return False

        common.wait_for(up, 60, "the API answering /healthz", every=0.1)
        times = []
        for i in range(20 + count):  # the first 20 warm the process up
            body = {"template": TEMPLATE, "context": {"concept": f"api {i}"}, "model": MODEL}
            started = time.perf_counter()
            status, answer = request("POST", "/api/v1/llm_jobs", json.dumps(body).encode())
            elapsed = time.perf_counter() - started
            if status != 202:
                raise RuntimeError(f"the API answered {status}: {answer.decode(errors='replace')}")
            if i >= 20:
                times.append(elapsed)
        return times
    finally:
        client.close()
        common.stop(proc)


def _bulk_rates(pool: Any, user: Any, rows: int, rounds: int) -> list[float]:
    from tasks.outputs import submit_many

    rates = []
    for r in range(rounds):
        contexts = [{"concept": f"bulk {r}-{i}"} for i in range(rows)]
        started = time.perf_counter()
        result = submit_many(pool, user=user, template=TEMPLATE, model=MODEL, contexts=contexts)
        rates.append(len(result.job_ids) / (time.perf_counter() - started))
    return rates


def run(
    *, submits: int = 1000, requests: int = 500, bulk: int = 10_000, rounds: int = 3
) -> list[Goal]:
    from db.pool import sync_pool
    from tasks import accounts

    with common.fresh_database() as url:
        pool = sync_pool(url, max_size=4)
        try:
            user = accounts.create_user(pool, "bench")
            _submit_times(pool, user, 50, offset=10**6)  # warm-up: imports, prepared statements
            python = common.summary_ms(_submit_times(pool, user, submits, offset=0))
            with common.fresh_database() as api_url:
                # An empty queue, as the Python run had: the estimate counts waiting jobs.
                api_pool = sync_pool(api_url, max_size=1)
                try:
                    accounts.create_user(api_pool, "bench")
                    token = accounts.create_token(api_pool, "bench")
                finally:
                    api_pool.close()
                api = common.summary_ms(_api_times(api_url, token, requests))
            rates = _bulk_rates(pool, user, bulk, rounds)
            with common.connect(url) as conn:
                waiting = conn.execute(
                    "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'todo'"
                ).fetchone()["n"]
            backlog = common.summary_ms(_submit_times(pool, user, 200, offset=2 * 10**6))
        finally:
            pool.close()
    bulk_rate = statistics.median(rates)
    headers = ["path", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"]
    rows = [
        ["tasks.outputs.submit (Python)", *python.values()],
        ["POST /api/v1/llm_jobs (uvicorn)", *api.values()],
        [f"submit with {waiting:,} jobs waiting", *backlog.values()],
    ]
    common.print_table("Submit latency (one output row + its job, one transaction)", headers, rows)
    print(
        f"bulk submit_many of {bulk:,} contexts: median {bulk_rate:,.0f} jobs/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})"
    )
    common.print_json(
        NAME,
        {
            "python": python,
            "api": api,
            "bulk_jobs_per_s": round(bulk_rate),
            "with_backlog": {"waiting_jobs": waiting, **backlog},
        },
    )
    return [
        common.at_most(NAME, "submit p50 (Python)", python["p50_ms"], 3, "ms"),
        common.at_most(NAME, "submit p99 (Python)", python["p99_ms"], 10, "ms"),
        common.at_most(NAME, "submit p50 (API)", api["p50_ms"], 3, "ms"),
        common.at_most(NAME, "submit p99 (API)", api["p99_ms"], 10, "ms"),
        common.at_least(NAME, "bulk submit_many", bulk_rate, 5000, "jobs/s"),
        Goal(NAME, f"submit p50 with {waiting:,} waiting", "-", backlog["p50_ms"], None, "ms"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__)
    parser.add_argument("--submits", type=int, default=None, help="Python submits (1,000)")
    parser.add_argument("--requests", type=int, default=None, help="API requests (500)")
    parser.add_argument("--bulk", type=int, default=None, help="contexts per bulk run (10,000)")
    args = parser.parse_args(argv)
    common.log_to_file(NAME)
    run(
        submits=args.submits or (200 if args.quick else 1000),
        requests=args.requests or (100 if args.quick else 500),
        bulk=args.bulk or (2000 if args.quick else 10_000),
        rounds=1 if args.quick else 3,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
