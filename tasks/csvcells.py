"""Cells of the CSV files the product writes, safe to open in a spreadsheet.

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is read by
spreadsheets as a formula (a batch row, a model's answer or a template can be steered to hold
one), so it gets a leading `'` and is shown as the text it is. Numbers are left alone: a value
that is not text (a cost of -0.5) and text that is exactly a decimal number ("-0.5", "+3",
"-1e5") run nothing and stay numbers. JSON Lines exports are never changed.

The CSV that PostgreSQL writes itself (the feedback CSV, by COPY) applies the same rule with the
SQL function `llmjobs_csv_cell` (migration 0011); a test holds the two to the same table.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain decimal number, ASCII digits only; the SQL function uses the same pattern.
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def safe_cell(value: Any) -> Any:
    """The value to write in a CSV cell: text a spreadsheet would evaluate, with a leading `'`;
    anything else (numbers, None, text that is a plain number) as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_text(fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A CSV file: a header row of fieldnames, then one line per row (its values under those
    names, missing or None as empty cells), every cell, the header's too, through safe_cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(name) for name in fieldnames])
    for row in rows:
        writer.writerow([safe_cell(row.get(name)) for name in fieldnames])
    return buffer.getvalue()
