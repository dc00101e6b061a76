"""LLM judges and their verdicts: typed rows and the functions that read and write them. A
verdict is read from the judge's own output (the judge_outcomes view): pass, fail, no verdict
or waiting."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import psycopg

from db.models import FeedbackValue, Row
from db.queries import queries

Outcome = Literal["pass", "fail", "no verdict", "waiting"]
OUTCOMES: tuple[str, ...] = Outcome.__args__


class Judge(Row):
    id: int
    name: str
    model: str
    rubric: str
    created_by: int | None = None
    created_by_name: str | None = None
    created_at: datetime
    updated_at: datetime


class ScopedOutput(Row):
    """What a judge sees of an output it judges."""

    id: int
    model: str
    prompt: str | None = None
    raw_response: str | None = None
    corrected_answer: str | None = None
    context: dict[str, Any]


class Verdict(Row):
    judge_id: int
    output_id: int
    judge_output_id: int
    created_at: datetime
    outcome: Outcome
    reason: str | None = None
    error_message: str | None = None
    # of the judged output
    model: str | None = None
    user_id: int | None = None
    feedback: FeedbackValue | None = None
    judge_name: str | None = None
    judge_model: str | None = None


class CalibrationCells(Row):
    """Per model: the confusion matrix of a person's thumb (up: pass) against the judge."""

    model: str
    up_pass: int
    up_fail: int
    down_pass: int
    down_fail: int


class JudgedCounts(Row):
    model: str
    judge_pass: int
    judge_fail: int


def list_judges(conn: psycopg.Connection) -> list[Judge]:
    return [Judge.model_validate(r) for r in conn.execute(queries["list_judges"])]


def get_judge(conn: psycopg.Connection, judge_id: int) -> Judge | None:
    row = conn.execute(queries["get_judge"], {"id": judge_id}).fetchone()
    return Judge.model_validate(row) if row else None


def lock_judge(conn: psycopg.Connection, judge_id: int) -> bool:
    """Hold the judge until the transaction ends; False when there is none."""
    return conn.execute(queries["lock_judge"], {"id": judge_id}).fetchone() is not None


def insert_judge(
    conn: psycopg.Connection, *, name: str, model: str, rubric: str, created_by: int
) -> int:
    params = {"name": name, "model": model, "rubric": rubric, "created_by": created_by}
    return conn.execute(queries["insert_judge"], params).fetchone()["id"]


def update_judge(
    conn: psycopg.Connection, judge_id: int, *, name: str, model: str, rubric: str
) -> bool:
    params = {"id": judge_id, "name": name, "model": model, "rubric": rubric}
    return conn.execute(queries["update_judge"], params).fetchone() is not None


def delete_judge(conn: psycopg.Connection, judge_id: int) -> bool:
    return conn.execute(queries["delete_judge"], {"id": judge_id}).fetchone() is not None


def judge_scope(
    conn: psycopg.Connection,
    *,
    judge_id: int,
    limit: int,
    again: bool = False,
    user_id: int | None = None,
    model: str | None = None,
    template_version_id: int | None = None,
    template: str | None = None,
    batch_id: int | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    rated_only: bool = False,
) -> list[ScopedOutput]:
    params = {
        "judge_id": judge_id,
        "limit": limit,
        "again": again,
        "user_id": user_id,
        "model": model,
        "template_version_id": template_version_id,
        "template": template,
        "batch_id": batch_id,
        "created_after": created_after,
        "created_before": created_before,
        "rated_only": rated_only,
    }
    return [ScopedOutput.model_validate(r) for r in conn.execute(queries["judge_scope"], params)]


def put_verdicts(
    conn: psycopg.Connection, judge_id: int, output_ids: list[int], judge_output_ids: list[int]
) -> None:
    params = {"judge_id": judge_id, "output_ids": output_ids, "judge_output_ids": judge_output_ids}
    conn.execute(queries["put_judge_verdicts"], params)


def outcome_counts(
    conn: psycopg.Connection, judge_id: int, user_id: int | None = None
) -> dict[str, int]:
    rows = conn.execute(queries["judge_outcome_counts"], {"judge_id": judge_id, "user_id": user_id})
    found = {r["outcome"]: r["n"] for r in rows}
    return {outcome: found.get(outcome, 0) for outcome in OUTCOMES}


def verdicts_page(
    conn: psycopg.Connection,
    judge_id: int,
    *,
    limit: int,
    user_id: int | None = None,
    outcome: str | None = None,
    before_id: int | None = None,
) -> list[Verdict]:
    params = {
        "judge_id": judge_id,
        "limit": limit,
        "user_id": user_id,
        "outcome": outcome,
        "before_id": before_id,
    }
    return [Verdict.model_validate(r) for r in conn.execute(queries["judge_verdicts_page"], params)]


def output_verdicts(conn: psycopg.Connection, output_id: int) -> list[Verdict]:
    rows = conn.execute(queries["output_verdicts"], {"output_id": output_id})
    return [Verdict.model_validate(r) for r in rows]


def calibration_cells(
    conn: psycopg.Connection, judge_id: int, user_id: int | None = None
) -> list[CalibrationCells]:
    rows = conn.execute(queries["judge_calibration"], {"judge_id": judge_id, "user_id": user_id})
    return [CalibrationCells.model_validate(r) for r in rows]


def leaderboard_judged(
    conn: psycopg.Connection,
    *,
    judge_id: int,
    user_id: int | None,
    template_id: int | None = None,
    version: int | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[JudgedCounts]:
    params = {
        "judge_id": judge_id,
        "user_id": user_id,
        "template_id": template_id,
        "version": version,
        "created_after": created_after,
        "created_before": created_before,
    }
    return [
        JudgedCounts.model_validate(r) for r in conn.execute(queries["leaderboard_judged"], params)
    ]
