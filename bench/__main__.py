"""Run every benchmark in sequence and print the goals against what was measured.

    python -m bench [--quick] [--only overhead,queries] [--no-profile]

Full sizes by default (about 17 minutes on 2 cores); `--quick` for small ones. Each benchmark
prints its own table and one JSON line; this adds the machine, the summary table and a final
JSON line with every goal. Logs of the processes started go to LOG_DIR (see bench/common.py).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import (
    cold_start,
    common,
    drain,
    io_scaling,
    limits,
    overhead,
    page_time,
    pickup,
    queries,
    submit_latency,
    template_budget,
)
from bench.common import Goal


def _plan(quick: bool, profile: bool) -> dict[str, Callable[[], list[Goal]]]:
    return {
        "overhead": lambda: overhead.run(
            jobs=1000 if quick else 10_000,
            profile=profile,
            profile_jobs=1000 if quick else 2000,
            what_if=not quick,
        ),
        "io_scaling": lambda: io_scaling.run(jobs=800 if quick else 4000),
        "submit": lambda: submit_latency.run(
            submits=200 if quick else 1000,
            requests=100 if quick else 500,
            bulk=2000 if quick else 10_000,
            rounds=1 if quick else 3,
        ),
        "pickup": lambda: pickup.run(seconds=3 if quick else 10),
        "drain": lambda: drain.run(rows=4000 if quick else 20_000),
        "limits": lambda: limits.run(rows=1200 if quick else 3000),
        "queries": lambda: queries.run(sizes=(2000, 50_000) if quick else (10_000, 1_000_000)),
        "cold_start": lambda: cold_start.run(repeats=1 if quick else 3),
        "template_budget": lambda: template_budget.run(repeats=3 if quick else 5),
        "page_time": lambda: page_time.run(
            outputs=10_000 if quick else 1_000_000, repeats=2 if quick else 5
        ),
    }


def machine() -> dict[str, Any]:
    import psutil

    return {
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **common.server_facts(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__)
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--no-profile", action="store_true", help="skip the worker profile")
    args = parser.parse_args(argv)
    common.log_to_file("bench")
    profile = not args.no_profile and (common.BIN / "py-spy").exists()
    plan = _plan(args.quick, profile)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(plan)
    unknown = set(chosen) - set(plan)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))} (of {', '.join(plan)})")
    facts = machine()
    print("machine:", json.dumps(facts))
    goals: list[Goal] = []
    timings: dict[str, float] = {}
    for name in chosen:
        print(f"\n# {name} ({common.load_average()})", flush=True)
        started = time.perf_counter()
        goals += plan[name]()
        timings[name] = time.perf_counter() - started
        print(f"[{name}: {timings[name]:.0f} s]", flush=True)
    common.print_goals(f"Summary ({'quick' if args.quick else 'full'} sizes)", goals)
    print(f"wall time: {sum(timings.values()):.0f} s ({common.load_average()} at the end)")
    print(
        json.dumps(
            {
                "bench": "summary",
                "machine": facts,
                "seconds": {k: round(v) for k, v in timings.items()},
                "goals": [
                    {
                        "bench": g.bench,
                        "metric": g.metric,
                        "goal": g.goal,
                        "measured": round(g.measured, 3),
                        "met": g.met,
                    }
                    for g in goals
                ],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
