"""Demo rows: written already finished, marked `demo`, and removed by that mark alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from db.queries import queries


@dataclass(frozen=True)
class DemoState:
    loaded: bool
    name_taken: bool
    has_outputs: bool


def state(conn: psycopg.Connection, name: str) -> DemoState:
    row = conn.execute(queries["demo_state"], {"name": name}).fetchone()
    return DemoState(row["loaded"], row["name_taken"], row["has_outputs"])


def _insert(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> int:
    return conn.execute(queries[query], params).fetchone()["id"]


def insert_user(conn: psycopg.Connection, **params: Any) -> int:
    return _insert(conn, "demo_insert_user", params)


def insert_template(conn: psycopg.Connection, **params: Any) -> int:
    return _insert(conn, "demo_insert_template", params)


def insert_template_version(conn: psycopg.Connection, **params: Any) -> int:
    return _insert(conn, "demo_insert_template_version", params)


def insert_comparison(conn: psycopg.Connection, **params: Any) -> int:
    return _insert(conn, "demo_insert_comparison", params)


def insert_batch(conn: psycopg.Connection, **params: Any) -> int:
    return _insert(conn, "demo_insert_batch", {**params, "columns": Jsonb(params["columns"])})


def insert_outputs(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert finished outputs; return their ids in order."""
    params = [
        {**r, "context": Jsonb(r["context"]), "parsed_output": _json_or_none(r["parsed_output"])}
        for r in rows
    ]
    with conn.cursor() as cur:
        cur.executemany(queries["demo_insert_output"], params, returning=True)
        ids = []
        while True:
            ids.append(cur.fetchone()["id"])
            if not cur.nextset():
                return ids


def _json_or_none(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def insert_feedback_events(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(queries["demo_insert_feedback_event"], rows)


def insert_preferences(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(queries["demo_insert_preference"], rows)


def delete_all(conn: psycopg.Connection) -> dict[str, int]:
    """Delete every demo row (children before parents); return how many of each."""
    steps = (
        ("outputs", "demo_delete_outputs"),
        ("comparisons", "demo_delete_comparisons"),
        ("batches", "demo_delete_batches"),
        ("templates", "demo_delete_templates"),
        ("users", "demo_delete_users"),
    )
    return {table: conn.execute(queries[name]).fetchone()["n"] for table, name in steps}
