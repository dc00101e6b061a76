"""Dashboard queries at 10 k and 1 M outputs.

    python -m bench.queries [--sizes 10000,1000000] [--quick] [--plans]

Seeds llm_outputs in SQL (generate_series): 50 analysts (a few heavy ones), 10 models and 20
templates with skewed use, 90 days of history (ids in time order), 94 % completed, 6 % failed,
the newest 0.5 % pending or processing, 15 % of completed outputs thumbs up and 7 % thumbs down,
half the thumbs-down with one or two reasons (wrong most, unsafe least) and 5 % of the thumbs-up
with "great", one feedback event per rated output; then rolls up every settled period (the
analytics rollup, as the worker's periodic refresh would). Then times, on one connection as the
dashboard's pool would, what the dashboard runs: the outputs page (`db.outputs.list_outputs`, a
filter and the second keyset page, as an analyst and as an admin) and every aggregate of
`db/analytics.py` and `db/reasons.py` over the analytics page's default range (the last 30
days), as an admin (everyone) and as an analyst. The analytics page's CSV download (every rated
output of the range, at most 50,000, written by the server) runs on click, not with the page: it
is timed apart, in ms and rows per second, with no goal (its rows grow with the data).

Goals per query: p50 at 1 M <= 100 ms and p50 at 1 M ÷ p50 at 10 k <= 3. For each query missing
one (every query with --plans), prints a summary of `EXPLAIN (ANALYZE, BUFFERS)`: the plan's top
nodes, the scans and indexes used (the rollup's functions among them), rows read, buffers and
time.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql

from bench import common
from bench.common import Goal

NAME = "queries"
GOAL_MS = 100.0
GOAL_RATIO = 3.0
PAGE = 26  # the outputs page asks for 25 rows and one more to know if a next page exists

MODELS = [
    "openai/gpt-4o-mini",
    "openai/gpt-4o",
    "anthropic/claude-3-5-haiku-latest",
    "anthropic/claude-3-5-sonnet-latest",
    "ollama/llama3.1",
    "gemini/gemini-1.5-flash",
    "mistral/mistral-large-latest",
    "groq/llama-3.1-70b",
    "openai/o3-mini",
    "offline/echo",
]
AUDIENCES = ["beginner", "manager", "analyst", "child", "lawyer"]
TEMPLATES = [
    f"Template {k}: explain {{{{concept}}}} to a {AUDIENCES[k % 5]} in about {50 * (k + 1)} "
    f"words, with {k % 4 + 1} examples and a short summary at the end."
    for k in range(20)
]

# Skewed picks: power(random(), k) concentrates on the first entries (heavy users, popular
# models and templates). Ids follow time: the newest outputs have the highest ids.
SEED_OUTPUTS = """
INSERT INTO llm_outputs (user_id, template, model, context, format, queue, priority, kind,
                         status, prompt, raw_response, parsed_output, feedback,
                         feedback_reasons, attempts, error_message, prompt_tokens,
                         completion_tokens, cost, latency_ms, created_at, started_at,
                         completed_at)
SELECT user_id, template, model, context, format, 'default', 10, 'original',
       status, prompt,
       CASE WHEN status = 'completed' THEN answer END,
       CASE WHEN status = 'completed' THEN to_jsonb(answer) END,
       CASE WHEN status <> 'completed' THEN 'none'
            WHEN r_feedback < 0.15 THEN 'thumbs_up'
            WHEN r_feedback < 0.22 THEN 'thumbs_down'
            ELSE 'none' END,
       -- half the thumbs-down give a reason (a third of those two), 5 %% of thumbs-up "great"
       CASE WHEN status <> 'completed' THEN '{}'::text[]
            WHEN r_feedback < 0.0075 THEN ARRAY['great']
            WHEN r_feedback >= 0.15 AND r_feedback < 0.185 THEN
                 CASE WHEN r_reason < 0.67 THEN ARRAY[(%(reasons)s::text[])[1 + reason]]
                      ELSE ARRAY[(%(reasons)s::text[])[1 + reason],
                                 (%(reasons)s::text[])[1 + (reason + 1) %% 5]] END
            ELSE '{}' END,
       CASE WHEN status = 'pending' THEN 0 ELSE 1 END,
       CASE WHEN status = 'failed' THEN 'RateLimitError: provider said slow down' END,
       prompt_tokens, completion_tokens,
       CASE WHEN status = 'completed'
            THEN (prompt_tokens * 0.0000025 + completion_tokens * 0.00001)::numeric(14, 8) END,
       CASE WHEN status IN ('completed', 'failed') THEN latency_ms END,
       created_at,
       CASE WHEN status <> 'pending' THEN created_at + interval '40 milliseconds' END,
       CASE WHEN status IN ('completed', 'failed')
            THEN created_at + latency_ms * interval '1 millisecond' END
  FROM (
    SELECT %(first_user)s + floor(power(random(), 1.6) * 50)::int AS user_id,
           t.template,
           (%(models)s::text[])[1 + floor(power(random(), 2) * 10)::int] AS model,
           jsonb_build_object('concept', 'concept ' || (g %% 5000)) AS context,
           (ARRAY['text', 'json', 'markdown', 'html'])[1 + g %% 4] AS format,
           CASE WHEN g > %(n)s - %(n)s / 200
                THEN (CASE WHEN random() < 0.5 THEN 'pending' ELSE 'processing' END)
                WHEN random() < 0.06 THEN 'failed'
                ELSE 'completed' END AS status,
           replace(t.template, '{{concept}}', 'concept ' || (g %% 5000)) AS prompt,
           'Here is an answer about concept ' || (g %% 5000) || '. '
               || repeat('It explains the idea step by step with an example. ', 6) AS answer,
           random() AS r_feedback,
           random() AS r_reason,
           floor(power(random(), 1.7) * 5)::int AS reason,
           100 + floor(random() * 900)::int AS prompt_tokens,
           20 + floor(random() * 600)::int AS completion_tokens,
           300 + floor(power(random(), 2) * 8000)::int AS latency_ms,
           now() - interval '90 days' * (1 - g::float8 / %(n)s)
               + random() * interval '1 second' AS created_at
      FROM generate_series(1, %(n)s) AS g
      CROSS JOIN LATERAL (
          SELECT (%(templates)s::text[])[1 + floor(power(random() + g * 0, 1.3) * 20)::int]
                 AS template
      ) AS t
  ) AS s
 ORDER BY created_at
"""

SEED_FEEDBACK = """
INSERT INTO feedback_events (output_id, user_id, old_value, new_value, created_at, reasons,
                             changed)
SELECT id, user_id, 'none', feedback, completed_at + interval '1 hour', feedback_reasons,
       CASE WHEN feedback_reasons = '{}' THEN '{feedback}'::text[]
            ELSE '{feedback,reasons}' END
  FROM llm_outputs
 WHERE feedback <> 'none'
"""
# The default reasons of a thumbs-down, the most given first.
REASONS = ["wrong", "incomplete", "off-format", "too long", "unsafe"]


def seed(url: str, outputs: int) -> dict[str, Any]:
    """Replace every output with `outputs` seeded ones; return what the cases filter on."""
    with common.connect(url) as conn:
        conn.execute("TRUNCATE llm_outputs, feedback_events RESTART IDENTITY CASCADE")
        first = conn.execute("SELECT coalesce(min(id), 0) AS id FROM users").fetchone()["id"]
        if not first:
            conn.execute(
                "INSERT INTO users (name, role) "
                "SELECT 'analyst_' || lpad(i::text, 2, '0'), 'analyst' "
                "  FROM generate_series(1, 50) AS i"
            )
            conn.execute("INSERT INTO users (name, role) VALUES ('admin', 'admin')")
            first = conn.execute("SELECT min(id) AS id FROM users").fetchone()["id"]
        started = time.perf_counter()
        conn.execute(
            SEED_OUTPUTS,
            {
                "n": outputs,
                "first_user": first,
                "models": MODELS,
                "templates": TEMPLATES,
                "reasons": REASONS,
            },
        )
        conn.execute(SEED_FEEDBACK)
        conn.execute("VACUUM (ANALYZE) llm_outputs")
        conn.execute("VACUUM (ANALYZE) feedback_events")
        seconds = time.perf_counter() - started
        rollup = refresh_rollup(conn)
        size = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('llm_outputs')) AS s"
        ).fetchone()["s"]
        # The filters below pick the middle: a typical analyst, model and template.
        middle = {}
        for column in ("user_id", "model", "template"):
            rows = conn.execute(
                sql.SQL("SELECT {} AS v FROM llm_outputs GROUP BY 1 ORDER BY count(*) DESC").format(
                    sql.Identifier(column)
                )
            ).fetchall()
            middle[column] = rows[len(rows) // 2]["v"]
    return {"seconds": seconds, "size": size, **rollup, **middle}


def refresh_rollup(conn: Any) -> dict[str, Any]:
    """Roll up every settled period, as the worker's periodic refresh does after a migration,
    and let autovacuum's statistics catch up; what it took and how big the rollup is."""
    from db import analytics

    started = time.perf_counter()
    periods = analytics.refresh_rollup(conn)
    conn.execute("VACUUM (ANALYZE) analytics_rollup")
    conn.execute("VACUUM (ANALYZE) analytics_periods")
    found = conn.execute(
        "SELECT count(*) AS rows, "
        "       pg_size_pretty(pg_total_relation_size('analytics_rollup')) AS size "
        "  FROM analytics_rollup"
    ).fetchone()
    return {
        "rollup_seconds": time.perf_counter() - started,
        "rollup_periods": periods,
        "rollup_rows": found["rows"],
        "rollup_size": found["size"],
    }


# --- the dashboard's queries ----------------------------------------------------------------


class _NoRows(list):
    """What the recorder answers: no rows, and a single row whose every figure is 0."""

    def fetchone(self) -> dict[str, Any]:
        return defaultdict(int)

    def fetchall(self) -> list[Any]:
        return []


class _Recorder:
    """Stands in for a connection to learn which SQL and parameters a db function sends last
    (an aggregate may first send the rollup's refresh)."""

    def __init__(self) -> None:
        self.sent: tuple[str, dict[str, Any]] | None = None

    def execute(self, query: str, params: dict[str, Any] | None = None) -> _NoRows:
        self.sent = (query, params or {})
        return _NoRows()


Case = tuple[str, Callable[[Any], Any]]


def cases(picks: dict[str, Any], second_page: dict[str, int]) -> list[Case]:
    """(label, call on a connection) for every query the outputs and analytics pages run."""
    from db import analytics, outputs, reasons
    from tasks.analytics import bucket_for, output_filter

    today = datetime.now(UTC).date()
    everyone = output_filter(start=today - timedelta(days=29), end=today)
    analyst = everyone.model_copy(update={"user_id": picks["user_id"]})
    bucket = bucket_for(everyone)
    found: list[Case] = [
        (
            "outputs page 2: analyst, status=completed",
            lambda c: outputs.list_outputs(
                c,
                user_id=picks["user_id"],
                status="completed",
                before_id=second_page.get("analyst"),
                limit=PAGE,
            ),
        ),
        (
            "outputs page 2: admin, model=…",
            lambda c: outputs.list_outputs(
                c, model=picks["model"], before_id=second_page.get("model"), limit=PAGE
            ),
        ),
        (
            "outputs page 2: admin, template=… thumbs_down",
            lambda c: outputs.list_outputs(
                c,
                template=picks["template"],
                feedback="thumbs_down",
                before_id=second_page.get("template"),
                limit=PAGE,
            ),
        ),
    ]
    for who, flt, user_id in (("admin", everyone, None), ("analyst", analyst, picks["user_id"])):
        found += [
            (f"models_used: {who}", lambda c, u=user_id: analytics.models_used(c, u)),
            (f"templates_used: {who}", lambda c, u=user_id: analytics.templates_used(c, u, 50)),
            (f"by_model 30 d: {who}", lambda c, f=flt: analytics.by_model(c, f)),
            (
                f"feedback_over_time 30 d: {who}",
                lambda c, f=flt: analytics.feedback_over_time(c, f, bucket),
            ),
            (
                f"volume_over_time 30 d: {who}",
                lambda c, f=flt: analytics.volume_over_time(c, f, bucket),
            ),
            (f"by_template 30 d: {who}", lambda c, f=flt: analytics.by_template(c, f, 10)),
            (f"reasons by_model 30 d: {who}", lambda c, f=flt: reasons.by_model(c, f)),
            (f"reasons by_template 30 d: {who}", lambda c, f=flt: reasons.by_template(c, f, 10)),
            (
                f"reasons over_time 30 d: {who}",
                lambda c, f=flt: reasons.over_time(c, f, bucket),
            ),
        ]
    return found


def export_cases(picks: dict[str, Any]) -> list[Case]:
    """(label, call) for the analytics page's CSV download, which runs on click, not with the
    page: every rated output in the range, at most EXPORT_LIMIT, as the admin and the analyst."""
    from db import analytics
    from tasks.analytics import EXPORT_LIMIT, output_filter

    today = datetime.now(UTC).date()
    everyone = output_filter(start=today - timedelta(days=29), end=today)
    analyst = everyone.model_copy(update={"user_id": picks["user_id"]})
    return [
        (f"feedback CSV 30 d: {who}", lambda c, f=flt: analytics.feedback_csv(c, f, EXPORT_LIMIT))
        for who, flt in (("admin", everyone), ("analyst", analyst))
    ]


def _csv_rows(url: str, found: list[Case]) -> dict[str, int]:
    """Rows (header aside) of each export case's CSV."""
    with common.connect(url) as conn:
        return {label: len(list(csv.reader(io.StringIO(call(conn))))) - 1 for label, call in found}


def _second_pages(url: str, picks: dict[str, Any]) -> dict[str, int]:
    """The keyset cursor of each outputs-page case: the last id of its first page."""
    from db import outputs

    firsts = {
        "analyst": {"user_id": picks["user_id"], "status": "completed"},
        "model": {"model": picks["model"]},
        "template": {"template": picks["template"], "feedback": "thumbs_down"},
    }
    cursors = {}
    with common.connect(url) as conn:
        for key, filters in firsts.items():
            page = outputs.list_outputs(conn, limit=PAGE - 1, **filters)
            if page:
                cursors[key] = page[-1].id
    return cursors


def time_cases(url: str, found: list[Case], runs: int, budget_s: float) -> dict[str, list[float]]:
    """Seconds of each run of each case, on one connection (at least 3 runs, then up to
    `runs` within `budget_s` per case)."""
    times: dict[str, list[float]] = {}
    with common.connect(url) as conn:
        for label, call in found:
            call(conn)  # warm the cache, as a dashboard that is in use has it
            spent, taken = 0.0, []
            while len(taken) < runs and (len(taken) < 3 or spent < budget_s):
                started = time.perf_counter()
                call(conn)
                taken.append(time.perf_counter() - started)
                spent += taken[-1]
            times[label] = taken
    return times


# --- plans ----------------------------------------------------------------------------------


def _walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node]
    for child in node.get("Plans", []):
        found += _walk(child)
    return found


def explain(url: str, call: Callable[[Any], Any]) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the SQL a db function sends, summarised."""
    recorder = _Recorder()
    call(recorder)
    assert recorder.sent is not None
    query, params = recorder.sent
    with common.connect(url) as conn:
        plan = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query,  # the db module's own SQL
            params,
        ).fetchone()
    doc = next(iter(plan.values()))[0]
    root = doc["Plan"]
    nodes = _walk(root)
    top, node = [], root
    while len(top) < 4:
        top.append(node["Node Type"])
        if not node.get("Plans"):
            break
        node = node["Plans"][0]
    scans = []
    for n in nodes:
        scanned = n.get("Relation Name") or n.get("Function Name")
        if "Scan" in n["Node Type"] and scanned:
            scans.append(
                f"{n['Node Type']} on {scanned}"
                + (f" using {n['Index Name']}" if n.get("Index Name") else "")
                + f" ({n.get('Actual Rows', 0) * n.get('Actual Loops', 1):,.0f} rows"
                + (
                    f", {n['Rows Removed by Filter']:,} removed by filter"
                    if n.get("Rows Removed by Filter")
                    else ""
                )
                + ")"
            )
    return {
        "top": " → ".join(top),
        "index_used": any(n.get("Index Name") for n in nodes),
        "scans": scans,
        "ms": doc.get("Execution Time"),
        "shared_hit": root.get("Shared Hit Blocks", 0),
        "shared_read": root.get("Shared Read Blocks", 0),
        "temp_written": root.get("Temp Written Blocks", 0),
    }


# --- the benchmark --------------------------------------------------------------------------


def run(
    *, sizes: tuple[int, ...] = (10_000, 1_000_000), runs: int = 15, plans: bool = False
) -> list[Goal]:
    from tasks.analytics import EXPORT_LIMIT

    p50s: dict[int, dict[str, float]] = {}
    seeded: dict[int, dict[str, Any]] = {}
    explained: list[tuple[str, dict[str, Any]]] = []
    exports: dict[int, dict[str, tuple[float, int]]] = {}  # size: label: (p50 ms, rows)
    with common.fresh_database() as url:
        for size in sizes:
            seeded[size] = seed(url, size)
            picks = seeded[size]
            found = cases(picks, _second_pages(url, picks))
            times = time_cases(url, found, runs=runs, budget_s=6.0)
            p50s[size] = {k: common.percentile(v, 50) * 1000 for k, v in times.items()}
            downloads = export_cases(picks)
            rows_of = _csv_rows(url, downloads)
            exports[size] = {
                k: (common.percentile(v, 50) * 1000, rows_of[k])
                for k, v in time_cases(url, downloads, runs=runs, budget_s=6.0).items()
            }
            print(
                f"seeded {size:,} outputs in {picks['seconds']:.1f} s ({picks['size']}); "
                f"analyst user {picks['user_id']}, model {picks['model']}; rolled up "
                f"{picks['rollup_periods']} periods in {picks['rollup_seconds']:.1f} s "
                f"({picks['rollup_rows']:,} rows, {picks['rollup_size']})"
            )
            if size == max(sizes):
                small = p50s[min(sizes)]
                for label, call in found:
                    ratio = p50s[size][label] / small[label] if small.get(label) else 0.0
                    missed = p50s[size][label] > GOAL_MS or (len(sizes) > 1 and ratio > GOAL_RATIO)
                    if missed or plans:
                        explained.append((label, explain(url, call)))
    big, small = max(sizes), min(sizes)
    labels = list(p50s[big])
    rows = []
    for label in labels:
        ratio = p50s[big][label] / p50s[small][label] if p50s[small][label] else float("nan")
        met = p50s[big][label] <= GOAL_MS and (big == small or ratio <= GOAL_RATIO)
        rows.append(
            [label, p50s[small][label], p50s[big][label], ratio, "met" if met else "MISSED"]
        )
    common.print_table(
        f"Dashboard queries: p50 ms at {small:,} and {big:,} outputs (goal: <= {GOAL_MS:.0f} ms "
        f"at {big:,}, ratio <= {GOAL_RATIO:.0f})",
        ["query", f"p50 ms @{small:,}", f"p50 ms @{big:,}", "ratio", "verdict"],
        rows,
    )
    common.print_table(
        "CSV download of the rated outputs (on click, not with the page; at most "
        f"{EXPORT_LIMIT:,} rows): p50 ms and rows per second",
        ["download", "size", "rows", "p50 ms", "rows/s"],
        [
            [label, size, found, ms, found / ms * 1000 if ms else float("nan")]
            for size in sizes
            for label, (ms, found) in exports[size].items()
        ],
    )
    for label, plan in explained:
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) {label}: {plan['ms']:.1f} ms")
        print(f"  top: {plan['top']}; index used: {'yes' if plan['index_used'] else 'no'}")
        for scan in plan["scans"]:
            print(f"  {scan}")
        print(
            f"  buffers: {plan['shared_hit']:,} hit, {plan['shared_read']:,} read, "
            f"{plan['temp_written']:,} temp written"
        )
    missed = [r[0] for r in rows if r[-1] == "MISSED"]
    common.print_json(
        NAME,
        {
            "sizes": list(sizes),
            "seed_seconds": {str(s): round(seeded[s]["seconds"], 1) for s in sizes},
            "p50_ms": {
                label: {str(s): round(p50s[s][label], 2) for s in sizes} for label in labels
            },
            "missed": missed,
            "csv_download": {
                label: {
                    str(s): {"p50_ms": round(exports[s][label][0], 2), "rows": exports[s][label][1]}
                    for s in sizes
                }
                for label in exports[big]
            },
        },
    )
    worst = max(rows, key=lambda r: r[2])
    worst_ratio = max(rows, key=lambda r: r[3] if r[3] == r[3] else 0)
    return [
        common.at_most(NAME, f"worst p50 @{big:,}: {worst[0]}", worst[2], GOAL_MS, "ms"),
        common.at_most(NAME, f"worst ratio: {worst_ratio[0]}", worst_ratio[3], GOAL_RATIO),
        Goal(
            NAME,
            "queries meeting both goals",
            "all",
            len(rows) - len(missed),
            None,
            f"of {len(rows)}",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__)
    parser.add_argument("--sizes", default=None, help="outputs to seed, comma-separated")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per query (at most)")
    parser.add_argument(
        "--plans", action="store_true", help="print every query's plan, not only the misses'"
    )
    args = parser.parse_args(argv)
    common.log_to_file(NAME)
    sizes = args.sizes or ("2000,50000" if args.quick else "10000,1000000")
    run(sizes=tuple(int(s) for s in sizes.split(",")), runs=args.runs, plans=args.plans)
    return 0


if __name__ == "__main__":
    sys.exit(main())
