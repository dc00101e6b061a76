"""Tests take the time inside a test or fixture, never at import: a value computed when the
module is imported goes stale over a long run and crosses midnight against rows written later.
Also the boundaries tests/support/clock.py waits out."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.clock import period_end

TESTS = Path(__file__).resolve().parents[1]
# (what the call is made on, the function): datetime.now(), date.today(), time.time(), ...
CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("Timestamp", "now"),
}


def _is_clock_call(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    owner = node.func.value
    name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
    return (name, node.func.attr) in CLOCK_CALLS


def _run_at_import(tree: ast.Module) -> list[ast.AST]:
    """What a module evaluates when imported: its top-level statements (but not the bodies of
    functions and classes' methods), and default values of top-level functions' arguments."""
    found: list[ast.AST] = []
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            found += statement.args.defaults + [d for d in statement.args.kw_defaults if d]
            found += statement.decorator_list
        elif isinstance(statement, ast.ClassDef):
            found += [s for s in statement.body if not isinstance(s, ast.FunctionDef)]
        else:
            found.append(statement)
    return found


def clock_reads_at_import(source: str) -> list[int]:
    """The line numbers where a module reads the clock when it is imported."""
    tree = ast.parse(source)
    return sorted(
        node.lineno
        for part in _run_at_import(tree)
        for node in ast.walk(part)
        if _is_clock_call(node)
    )


def test_no_test_module_reads_the_clock_at_import():
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        for line in clock_reads_at_import(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "read the clock inside a test or fixture: " + ", ".join(offenders)


def test_the_check_finds_clock_reads_at_import_only():
    source = (
        "import datetime as dt, time\n"
        "from datetime import UTC, date, datetime\n"
        "NOW = datetime.now(UTC)\n"
        "TODAY = date.today()\n"
        "STARTED = time.time()\n"
        "LATER = dt.datetime.now() + dt.timedelta(days=1)\n"
        "def f(at=datetime.now()):\n"
        "    return datetime.now()\n"
        "class C:\n"
        "    WHEN = date.today()\n"
        "    def g(self):\n"
        "        return time.time()\n"
    )
    assert clock_reads_at_import(source) == [3, 4, 5, 6, 7, 10]


@pytest.mark.parametrize(
    ("moment", "period", "end"),
    [
        (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), "hour", datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), "day", datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2026, 12, 7, 2, 0, tzinfo=UTC), "month", datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2026, 11, 30, 12, 0, tzinfo=UTC), "month", datetime(2026, 12, 1, tzinfo=UTC)),
        (datetime(2026, 2, 28, 23, 30, tzinfo=UTC), "day", datetime(2026, 3, 1, tzinfo=UTC)),
        (datetime(2026, 3, 1, 10, 15, tzinfo=UTC), "hour", datetime(2026, 3, 1, 11, tzinfo=UTC)),
    ],
)
def test_period_end(moment, period, end):
    assert period_end(moment, period) == end
