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


# What an output row may leave out: no reasons, comment, correction or JSON Schema.
_OUTPUT_DEFAULTS: dict[str, Any] = {
    "feedback_reasons": [],
    "feedback_comment": None,
    "corrected_answer": None,
    "json_schema": None,
    "schema_valid": None,
    "schema_first_try": None,
}


def insert_outputs(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert finished outputs; return their ids in order."""
    params = [
        {
            **_OUTPUT_DEFAULTS,
            **r,
            "context": Jsonb(r["context"]),
            "parsed_output": _json_or_none(r["parsed_output"]),
            "json_schema": _json_or_none(r.get("json_schema")),
        }
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


def insert_judge(conn: psycopg.Connection, **params: Any) -> int:
    return _insert(conn, "demo_insert_judge", params)


def insert_judge_verdicts(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(queries["demo_insert_judge_verdict"], rows)


def insert_review_queue(conn: psycopg.Connection, **params: Any) -> int:
    return _insert(conn, "demo_insert_review_queue", {**params, "scope": Jsonb(params["scope"])})


def insert_review_items(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(queries["demo_insert_review_item"], rows)


def insert_review_marks(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(queries["demo_insert_review_mark"], rows)


def insert_preferences(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(queries["demo_insert_preference"], rows)


def delete_all(conn: psycopg.Connection) -> dict[str, int]:
    """Delete every demo row (children before parents); return how many of each."""
    steps = (
        ("review_queues", "demo_delete_review_queues"),
        ("judges", "demo_delete_judges"),
        ("outputs", "demo_delete_outputs"),
        ("comparisons", "demo_delete_comparisons"),
        ("batches", "demo_delete_batches"),
        ("templates", "demo_delete_templates"),
        ("users", "demo_delete_users"),
    )
    return {table: conn.execute(queries[name]).fetchone()["n"] for table, name in steps}
