"""What the command line prints: costs as plain decimals, an interruption as one line."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal

import pytest

from tasks.cli import main as cli


def test_costs_print_as_fixed_point_decimals(capsys):
    cli._print({"cost": Decimal("0.00000001"), "total": Decimal("0E-8"), "rows": [Decimal("1E+2")]})
    printed = capsys.readouterr().out
    assert "E-" not in printed and "E+" not in printed
    assert json.loads(printed) == {"cost": "0.00000001", "total": "0.00000000", "rows": ["100"]}


@pytest.mark.parametrize(
    ("argv", "done", "line"),
    [
        (["batch", "submit", "f.csv"], False, "nothing was queued"),
        (["submit"], False, "nothing was queued"),
        (["show", "1"], False, "nothing was changed"),
        (["export"], False, "what was printed is incomplete; nothing was changed"),
        (["submit"], True, "it was done, but its answer was not printed in full"),
        (["run"], False, "stopped"),
        (["reasons", "set"], False, "nothing was changed"),
        (["reasons", "remove"], False, "nothing was changed"),
    ],
)
def test_an_interruption_says_what_was_not_done(argv, done, line):
    action = argv[1] if argv[0] in ("batch", "reasons") else None
    args = argparse.Namespace(command=argv[0], action=action)
    assert cli._not_done(args, done) == line
