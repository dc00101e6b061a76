"""Template budget: how long a render takes to be refused when a template would cost too much.

    python -m bench.template_budget [--repeats 5]

Every render (the submit check, the live preview, the worker, batch rows, library templates) goes
through `tasks.llm.rendering.render`, which spends from one work budget. This times that function
on templates built to run for minutes or build huge values without the budget: nested loops, a
recursive macro, `|join` and `|list` over large ranges, string growth in a loop, `{% set %}`
accumulation, huge padding, a slow filter over large text. Each must be refused ("template too
expensive") and the slowest refusal (median over the repeats) must stay well under a second
(goal ≤ 0.5 s). For reference: the most a template the budget accepts can cost (a loop of
99,990 passes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench import common
from bench.common import Goal

NAME = "template_budget"

LARGE_TEXT = "word " * 6000  # 30 KB, the kind of document a context carries

COSTLY = {
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
    "{% endfor %}x",
    "recursive macro": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "branching macro": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}"
    "{% endmacro %}{{ f(60) }}",
    "join over a range": "{{ range(10000000)|join(',') }}",
    "list over a range": "{{ range(10000000)|list|length }}",
    "map over a range": "{{ range(100000)|map('string')|join }}",
    "string growth": "{% set ns = namespace(s='x') %}{% for i in range(60) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "set accumulation": "{% set ns = namespace(xs=[]) %}{% for i in range(100000) %}"
    "{% set ns.xs = ns.xs + [i] %}{% endfor %}{{ ns.xs|length }}",
    "huge padding": "{{ '%999999999s'|format('x') }}",
    "slow filter on large text": "{% for i in range(1000) %}{{ doc|wordwrap(3) }}{% endfor %}",
}
ACCEPTED = "{% for i in range(99990) %}{% endfor %}done"


def _seconds(template: str, context: dict, refused: bool) -> float:
    from tasks.errors import InvalidInput
    from tasks.llm.rendering import render

    started = time.perf_counter()
    try:
        render(template, context)
    except InvalidInput as exc:
        elapsed = time.perf_counter() - started
        if not refused:
            raise SystemExit(f"an accepted template was refused: {exc}") from exc
        if "too expensive" not in str(exc) and "recursion" not in str(exc).lower():
            raise SystemExit(f"refused for another reason: {exc}") from exc
        return elapsed
    elapsed = time.perf_counter() - started
    if refused:
        raise SystemExit(f"a costly template was rendered: {template[:60]}")
    return elapsed


def run(repeats: int = 5) -> list[Goal]:
    context = {"doc": LARGE_TEXT}
    rows = []
    slowest = 0.0
    for label, template in COSTLY.items():
        median = statistics.median(_seconds(template, context, True) for _ in range(repeats))
        slowest = max(slowest, median)
        rows.append([label, f"{median * 1000:.1f} ms", "refused"])
    accepted = statistics.median(_seconds(ACCEPTED, context, False) for _ in range(repeats))
    rows.append(["99,990-pass loop (reference)", f"{accepted * 1000:.1f} ms", "rendered"])
    common.print_table(
        f"Template budget: median of {repeats} renders", ["template", "time", "outcome"], rows
    )
    goals = [
        common.at_most(NAME, "slowest refusal", slowest, 0.5, "s"),
        Goal(NAME, "largest accepted loop", "-", accepted, None, "s"),
    ]
    print(json.dumps({"bench": NAME, "slowest_refusal_s": slowest, "accepted_s": accepted}))
    return goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    common.print_goals("Goals", run(repeats=args.repeats))


if __name__ == "__main__":
    main()
