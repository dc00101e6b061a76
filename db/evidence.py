"""Comparisons and pairwise preferences, the prompt template library, budgets, and the
leaderboard's aggregates."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from db.models import LLMOutput, Row, User
from db.queries import json_or_null, queries


class TemplateVersion(Row):
    id: int
    template_id: int
    name: str
    version: int
    body: str
    note: str
    owner_id: int | None = None
    created_by: int | None = None
    created_at: datetime
    # the JSON Schema the outputs of this version answer to (then they are json)
    json_schema: dict[str, Any] | None = None


class Comparison(Row):
    id: int
    user_id: int
    blind: bool
    created_at: datetime
    # the JSON Schema given to every model's answer
    json_schema: dict[str, Any] | None = None


class ComparisonSummary(Row):
    """A comparison as the list of recent ones shows it."""

    id: int
    user_id: int
    blind: bool
    created_at: datetime
    answers: int
    finished: int
    models: list[str]
    template: str | None = None
    picked: bool


class Preference(Row):
    id: int
    comparison_id: int
    user_id: int
    output_a: int
    output_b: int
    outcome: str
    created_at: datetime


class LeaderboardRow(Row):
    model: str
    outputs: int
    thumbs_up: int
    thumbs_down: int
    median_latency_ms: float | None = None
    cost_per_output: Decimal | None = None
    total_cost: Decimal | None = None
    pairs: int
    pair_score: Decimal


class CostPoint(Row):
    bucket: datetime
    model: str
    user_name: str
    outputs: int
    cost: Decimal


def add_template_version(
    conn: psycopg.Connection,
    *,
    name: str,
    body: str,
    note: str,
    user_id: int,
    json_schema: dict[str, Any] | None = None,
) -> TemplateVersion:
    """Append a version to the named template, creating the template when new (one transaction
    of the caller's; the template row is locked so two saves get distinct numbers)."""
    conn.execute(queries["insert_prompt_template"], {"name": name, "owner_id": user_id})
    template = conn.execute(queries["lock_prompt_template"], {"name": name}).fetchone()
    conn.execute(
        queries["insert_template_version"],
        {
            "template_id": template["id"],
            "body": body,
            "note": note,
            "created_by": user_id,
            "json_schema": json_or_null(json_schema),
        },
    )
    return get_template_version(conn, name)


def get_template_version(
    conn: psycopg.Connection, name: str, version: int | None = None
) -> TemplateVersion | None:
    row = conn.execute(queries["get_template_version"], {"name": name, "version": version})
    found = row.fetchone()
    return TemplateVersion.model_validate(found) if found else None


def get_template_version_by_id(conn: psycopg.Connection, version_id: int) -> TemplateVersion | None:
    found = conn.execute(queries["get_template_version_by_id"], {"id": version_id}).fetchone()
    return TemplateVersion.model_validate(found) if found else None


def list_templates(conn: psycopg.Connection) -> list[TemplateVersion]:
    """Every named template, as its latest version."""
    rows = conn.execute(queries["list_prompt_templates"])
    return sorted((TemplateVersion.model_validate(r) for r in rows), key=lambda t: t.name)


def template_versions(conn: psycopg.Connection, name: str) -> list[TemplateVersion]:
    rows = conn.execute(queries["template_versions"], {"name": name})
    return [TemplateVersion.model_validate(r) for r in rows]


def insert_comparison(
    conn: psycopg.Connection,
    *,
    user_id: int,
    blind: bool,
    json_schema: dict[str, Any] | None = None,
) -> Comparison:
    params = {"user_id": user_id, "blind": blind, "json_schema": json_or_null(json_schema)}
    row = conn.execute(queries["insert_comparison"], params)
    return Comparison.model_validate(row.fetchone())


def get_comparison(
    conn: psycopg.Connection, comparison_id: int, *, viewer_id: int | None = None
) -> Comparison | None:
    params = {"id": comparison_id, "viewer_id": viewer_id}
    found = conn.execute(queries["get_comparison"], params).fetchone()
    return Comparison.model_validate(found) if found else None


def list_comparisons(conn: psycopg.Connection, user_id: int, limit: int) -> list[ComparisonSummary]:
    rows = conn.execute(queries["list_comparisons"], {"user_id": user_id, "limit": limit})
    return [ComparisonSummary.model_validate(r) for r in rows]


def set_comparison_outputs(conn: psycopg.Connection, comparison_id: int, ids: list[int]) -> None:
    conn.execute(queries["set_comparison_output"], {"comparison_id": comparison_id, "ids": ids})


def comparison_outputs(conn: psycopg.Connection, comparison_id: int) -> list[LLMOutput]:
    rows = conn.execute(queries["comparison_outputs"], {"id": comparison_id})
    return [LLMOutput.model_validate(r) for r in rows]


def replace_preferences(
    conn: psycopg.Connection,
    comparison_id: int,
    user_id: int,
    pairs: list[tuple[int, int, str]],
) -> None:
    """Replace a comparison's pairwise judgements with pairs of (output_a, output_b, outcome)."""
    conn.execute(queries["clear_preferences"], {"comparison_id": comparison_id})
    for output_a, output_b, outcome in pairs:
        conn.execute(
            queries["insert_preference"],
            {
                "comparison_id": comparison_id,
                "user_id": user_id,
                "output_a": output_a,
                "output_b": output_b,
                "outcome": outcome,
            },
        )


def comparison_preferences(conn: psycopg.Connection, comparison_id: int) -> list[Preference]:
    rows = conn.execute(queries["comparison_preferences"], {"comparison_id": comparison_id})
    return [Preference.model_validate(r) for r in rows]


def set_user_budget(conn: psycopg.Connection, name: str, budget: Decimal | None) -> User | None:
    found = conn.execute(queries["set_user_budget"], {"name": name, "budget": budget}).fetchone()
    return User.model_validate(found) if found else None


def month_spend(conn: psycopg.Connection, user_id: int) -> Decimal:
    return conn.execute(queries["month_spend"], {"user_id": user_id}).fetchone()["spent"]


def typical_completion_tokens(conn: psycopg.Connection, model: str) -> float | None:
    return conn.execute(queries["model_typical_completion"], {"model": model}).fetchone()["tokens"]


def leaderboard(
    conn: psycopg.Connection,
    *,
    user_id: int | None,
    template_id: int | None = None,
    version: int | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[LeaderboardRow]:
    params = {
        "user_id": user_id,
        "template_id": template_id,
        "version": version,
        "created_after": created_after,
        "created_before": created_before,
    }
    return [LeaderboardRow.model_validate(r) for r in conn.execute(queries["leaderboard"], params)]


def cost_over_time(
    conn: psycopg.Connection,
    *,
    bucket: str,
    user_id: int | None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    model: str | None = None,
    template: str | None = None,
) -> list[CostPoint]:
    params = {
        "bucket": bucket,
        "user_id": user_id,
        "created_after": created_after,
        "created_before": created_before,
        "model": model,
        "template": template,
    }
    return [CostPoint.model_validate(r) for r in conn.execute(queries["cost_over_time"], params)]
