"""Named SQL: parses every `sql/*.sql` file into one mapping of query name to text."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any, LiteralString, cast

from psycopg.types.json import Json, Jsonb

_HEADER = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)


def _parse(text: str) -> dict[str, LiteralString]:
    parts = _HEADER.split(text)
    found: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        # The file is ours and read-only: its text is as trusted as a literal in the code.
        found[name] = cast(LiteralString, "\n".join(lines).strip())
    return found


def _load() -> dict[str, LiteralString]:
    found: dict[str, LiteralString] = {}
    folder = resources.files("db") / "sql"
    for file in sorted(f for f in folder.iterdir() if f.name.endswith(".sql")):
        for name, sql in _parse(file.read_text(encoding="utf-8")).items():
            if name in found:
                raise RuntimeError(f"query {name!r} is defined twice (again in {file.name})")
            found[name] = sql
    return found


queries: dict[str, LiteralString] = _load()


def jsonb_or_null(value: Any) -> Jsonb | None:
    """A jsonb parameter that is SQL NULL for None (Jsonb(None) would be the JSON null)."""
    return None if value is None else Jsonb(value)


def json_or_null(value: Any) -> Json | None:
    """A json parameter (its text kept as written: the order of an object's keys) that is SQL
    NULL for None."""
    return None if value is None else Json(value)
