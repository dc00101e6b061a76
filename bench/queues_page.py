"""Queues page time over a long job history: the page in Chromium, and its snapshot read alone.

    python -m bench.queues_page [--jobs 1000000] [--repeats 5] [--quick]

A fresh database gets `--jobs` procrastinate jobs over 30 days (most succeeded, some failed,
cancelled, waiting and running, on the three queues and the maintenance queue) with their
events, as a month of a busy installation leaves them. The dashboard (single-user mode, the
local admin) and a bare one-line page are served as in bench.page_time, and each is opened in a
new browser context `--repeats` times, each Queues load followed by one of the bare page at a
page's address (as bench.page_time does for every page but the root). The snapshot the page
reads (tasks.admin.queue_overview) is also timed alone, over the 1 hour and 24 hour windows.

Goals: the Queues page ≤ 2 s and ≤ 1.5 × the bare page (medians), as every page.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common, page_time
from bench.common import Goal

NAME = "queues_page"

# Statuses by share of the history; the most recent jobs are the waiting and running ones.
SEED_JOBS = """
INSERT INTO procrastinate_jobs (queue_name, task_name, priority, args, status, attempts)
SELECT CASE WHEN i %% 50 = 0 THEN 'maintenance'
            WHEN i %% 7 = 0 THEN 'high' WHEN i %% 5 = 0 THEN 'low' ELSE 'default' END,
       CASE WHEN i %% 50 = 0 THEN 'llmjobs.refresh_analytics' ELSE 'llm_job' END,
       0,
       jsonb_build_object('output_id', i),
       (CASE WHEN i > %(n)s - %(waiting)s THEN 'todo'
             WHEN i > %(n)s - %(waiting)s - %(running)s THEN 'doing'
             WHEN i %% 97 = 0 THEN 'failed'
             WHEN i %% 211 = 0 THEN 'cancelled'
             ELSE 'succeeded' END)::procrastinate_job_status,
       CASE WHEN i %% 97 = 0 THEN 3 ELSE 0 END
  FROM generate_series(1, %(n)s) AS i
"""
# Each job was queued at its place in the 30 days, and finished (or started) 5 s later.
SEED_EVENTS = """
INSERT INTO procrastinate_events (job_id, type, at)
SELECT id, 'deferred', now() - interval '30 days' * (1 - id::float8 / %(n)s)
  FROM procrastinate_jobs
 WHERE status <> 'todo'
UNION ALL
SELECT id,
       CASE status WHEN 'doing' THEN 'started' ELSE status::text END::procrastinate_job_event_type,
       now() - interval '30 days' * (1 - id::float8 / %(n)s) + interval '5 seconds'
  FROM procrastinate_jobs
 WHERE status NOT IN ('todo')
"""


def seed(url: str, jobs: int) -> dict[str, Any]:
    waiting, running = max(1, jobs // 250), max(1, jobs // 5000)
    started = time.perf_counter()
    with common.connect(url) as conn:
        conn.execute(SEED_JOBS, {"n": jobs, "waiting": waiting, "running": running})
        conn.execute(SEED_EVENTS, {"n": jobs})
        conn.execute("VACUUM (ANALYZE) procrastinate_jobs")
        conn.execute("VACUUM (ANALYZE) procrastinate_events")
        sizes = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('procrastinate_jobs')) AS jobs, "
            "       pg_size_pretty(pg_total_relation_size('procrastinate_events')) AS events, "
            "       (SELECT count(*) FROM procrastinate_events) AS event_rows"
        ).fetchone()
    return {"seconds": time.perf_counter() - started, "waiting": waiting, **sizes}


def time_snapshot(url: str, hours: int, repeats: int) -> list[float]:
    from db.pool import sync_pool
    from tasks import admin

    pool = sync_pool(url, max_size=1)
    try:
        user = admin.local_user(pool)
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            admin.queue_overview(pool, user, hours=hours)
            seconds.append(time.perf_counter() - started)
        return seconds
    finally:
        pool.close()


def run(*, jobs: int = 1_000_000, repeats: int = 5) -> list[Goal]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, Any] = {"jobs": jobs, "repeats": repeats}
    with common.fresh_database() as url, tempfile.TemporaryDirectory() as folder:
        seeded = seed(url, jobs)
        figures["seed_s"] = round(seeded["seconds"], 1)
        figures["event_rows"] = seeded["event_rows"]
        snapshot = {h: time_snapshot(url, h, repeats) for h in (1, 24)}
        bare_script = Path(folder) / "bare.py"
        bare_script.write_text(page_time.BARE)
        dashboard, dash_base = page_time._serve(
            common.ROOT / "streamlit_app.py", url, "queues-page-dashboard"
        )
        bare, bare_base = page_time._serve(bare_script, url, "queues-page-bare")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=page_time.CHROMIUM, args=page_time.CHROMIUM_ARGS
                )
                try:
                    page_time._time_page(browser, f"{dash_base}/queues")  # the first load
                    page_time._time_page(browser, f"{bare_base}/page")
                    # as in bench.page_time: each load paired with one of the bare page at a
                    # page's address
                    times, bare_times = [], []
                    for _ in range(repeats):
                        times.append(page_time._time_page(browser, f"{dash_base}/queues"))
                        bare_times.append(page_time._time_page(browser, f"{bare_base}/page"))
                finally:
                    browser.close()
        finally:
            common.stop(dashboard)
            common.stop(bare)
    median, bare_median = statistics.median(times), statistics.median(bare_times)
    figures.update(
        queues_s=round(median, 3),
        bare_s=round(bare_median, 3),
        snapshot_1h_ms=round(statistics.median(snapshot[1]) * 1000, 1),
        snapshot_24h_ms=round(statistics.median(snapshot[24]) * 1000, 1),
    )
    common.print_table(
        f"Queues page over {jobs:,} jobs and {seeded['event_rows']:,} events "
        f"(jobs {seeded['jobs']}, events {seeded['events']}; median of {repeats})",
        ["what", "median s", "÷ bare", "min s", "max s"],
        [
            ["(bare page at /page)", bare_median, 1.0, min(bare_times), max(bare_times)],
            ["Queues page", median, median / bare_median, min(times), max(times)],
            ["snapshot read, 1 h window", statistics.median(snapshot[1]), "", *_span(snapshot[1])],
            [
                "snapshot read, 24 h window",
                statistics.median(snapshot[24]),
                "",
                *_span(snapshot[24]),
            ],
        ],
    )
    common.print_json(NAME, figures)
    return [
        common.at_most(NAME, "Queues page", median, 2.0, "s"),
        common.at_most(NAME, "Queues page ÷ bare page", median / bare_median, 1.5),
    ]


def _span(values: list[float]) -> list[float]:
    return [min(values), max(values)]


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    jobs, repeats = (20_000, 2) if args.quick else (args.jobs, args.repeats)
    goals = run(jobs=jobs, repeats=repeats)
    common.print_goals("Queues page goals", goals)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
