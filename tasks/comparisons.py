"""Picking models by evidence: comparisons (one prompt, several models, side by side, optionally
blind), pairwise preferences, and the leaderboard that suggests a model."""

from __future__ import annotations

import random
from datetime import datetime
from itertools import combinations
from typing import Any, Literal

import psycopg
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from db import evidence
from db import judges as judges_db
from db.models import LLMOutput, User
from db.pooled import pooled
from tasks import budgets, templates
from tasks.analytics import wilson_interval
from tasks.csvcells import csv_text
from tasks.errors import Conflict, InvalidInput, NotFound
from tasks.llm import rendering
from tasks.logs import get_logger
from tasks.outputs import hidden_model, resolve_template, shown, validate, write_job

log = get_logger("llmjobs.compare")
MIN_MODELS, MAX_MODELS = 2, 6


class ComparedOutput(BaseModel):
    """One queued answer; in a blind comparison its model reads BLIND_MODEL until the pick."""

    output_id: int
    job_id: int
    model: str


class ComparisonSubmission(BaseModel):
    comparison_id: int
    blind: bool
    status: Literal["queued"] = "queued"
    outputs: list[ComparedOutput]


class ComparisonView(BaseModel):
    """A comparison as its owner sees it: in blind mode, model names stay hidden (None in models,
    BLIND_MODEL and blind_pending on the outputs, as everywhere else) and the answers are labelled
    A, B, C... until a pick is recorded."""

    comparison_id: int
    blind: bool
    picked: bool
    winner_output_id: int | None
    tie: bool
    labels: dict[int, str]
    models: dict[int, str | None]
    outputs: list[LLMOutput]
    json_schema: dict[str, Any] | None = None


class RecentComparison(BaseModel):
    """A comparison in the list of recent ones: model names are None while it is blind and
    nothing is picked yet."""

    comparison_id: int
    created_at: datetime
    blind: bool
    picked: bool
    answers: int
    finished: int
    models: list[str] | None
    template: str


def submit_comparison_on(
    conn: psycopg.Connection,
    *,
    user: User,
    template: str | None,
    context: dict[str, Any] | None,
    models: list[str],
    format: str | None = None,
    queue: str | None = None,
    blind: bool = False,
    template_name: str | None = None,
    template_version: int | None = None,
    json_schema: Any = None,
) -> ComparisonSubmission:
    """Queue one job per model for the same prompt on conn, all in one transaction (a savepoint
    inside the caller's). Every model's answer gets the same JSON Schema: json_schema (json only),
    else the library template version's; the comparison records it.

    Raises InvalidInput (models: 2 to 6 distinct usable ones; the rest as submit), BudgetExceeded.
    """
    context = rendering.check_context(context if context is not None else {})
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise InvalidInput("models", "must be a list of model names")
    if len(set(models)) != len(models) or not MIN_MODELS <= len(models) <= MAX_MODELS:
        raise InvalidInput("models", f"give {MIN_MODELS} to {MAX_MODELS} distinct models")
    template, version_id, template_schema = resolve_template(
        conn, template, template_name, template_version
    )
    requests = []
    for model in models:
        try:
            request = validate(
                conn,
                template=template,
                model=model,
                context=context,
                format=format,
                queue=queue,
                json_schema=json_schema,
                template_schema=template_schema,
            )
        except InvalidInput as exc:
            if exc.field == "model":
                raise InvalidInput("models", exc.message) from exc
            raise
        requests.append(request.model_copy(update={"template_version_id": version_id}))
    if blind:  # the answers are labelled in the order they are made: not the order given
        random.SystemRandom().shuffle(requests)
    written: list[ComparedOutput] = []
    with conn.transaction():
        for request in requests:
            budgets.ensure_within_budget(conn, user, request.model, template, context)
        comparison = evidence.insert_comparison(
            conn, user_id=user.id, blind=blind, json_schema=requests[0].json_schema
        )
        for request in requests:
            enqueued = write_job(conn, request, user, comparison_id=comparison.id)
            written.append(
                ComparedOutput(
                    output_id=enqueued.output_id,
                    job_id=enqueued.job_id,
                    model=hidden_model(request.model, blind),  # nothing is picked yet
                )
            )
    log.info(
        "comparison queued",
        comparison_id=comparison.id,
        user_id=user.id,
        models=",".join(models),
        blind=blind,
    )
    return ComparisonSubmission(comparison_id=comparison.id, blind=blind, outputs=written)


submit_comparison = pooled(submit_comparison_on)


def _load(pool: ConnectionPool, comparison_id: int, viewer: User):
    if not isinstance(comparison_id, int) or not 0 < comparison_id < 2**63:
        raise NotFound(f"comparison {comparison_id} not found")
    with pool.connection() as conn:
        found = evidence.get_comparison(
            conn, comparison_id, viewer_id=None if viewer.is_admin else viewer.id
        )
        if found is None:
            raise NotFound(f"comparison {comparison_id} not found")
        return (
            found,
            evidence.comparison_outputs(conn, comparison_id),
            evidence.comparison_preferences(conn, comparison_id),
        )


def get_comparison(pool: ConnectionPool, comparison_id: int, viewer: User) -> ComparisonView:
    """The comparison for its owner (or an admin); NotFound otherwise."""
    comparison, outputs, preferences = _load(pool, comparison_id, viewer)
    picked = bool(preferences)
    tie = picked and all(p.outcome == "tie" for p in preferences)
    winner = None if tie or not picked else preferences[0].output_a
    hide = comparison.blind and not picked
    labels = {o.id: chr(ord("A") + i) for i, o in enumerate(outputs)}
    answers = [shown(o.model_copy(update={"blind_pending": hide})) for o in outputs]
    return ComparisonView(
        comparison_id=comparison.id,
        blind=comparison.blind,
        picked=picked,
        winner_output_id=winner,
        tie=tie,
        labels=labels,
        models={o.id: None if hide else o.model for o in outputs},
        outputs=answers,
        json_schema=comparison.json_schema,
    )


def list_comparisons(pool: ConnectionPool, viewer: User, limit: int = 20) -> list[RecentComparison]:
    """The viewer's own most recent comparisons, newest first. Raises InvalidInput (limit)."""
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise InvalidInput("limit", "must be between 1 and 100")
    with pool.connection() as conn:
        rows = evidence.list_comparisons(conn, viewer.id, limit)
    return [
        RecentComparison(
            comparison_id=row.id,
            created_at=row.created_at,
            blind=row.blind,
            picked=row.picked,
            answers=row.answers,
            finished=row.finished,
            models=None if row.blind and not row.picked else row.models,
            template=row.template or "",
        )
        for row in rows
    ]


def pick(
    pool: ConnectionPool, comparison_id: int, user: User, winner_output_id: int | None
) -> ComparisonView:
    """Record the better answer (winner_output_id) or a tie (None) as pairwise preferences,
    replacing any earlier pick. Raises NotFound, InvalidInput (not one of its outputs), Conflict
    (answers not all finished, or the winner failed)."""
    comparison, outputs, _ = _load(pool, comparison_id, user)
    ids = [o.id for o in outputs]
    if any(o.status not in ("completed", "failed") for o in outputs):
        raise Conflict("wait until every answer of the comparison is finished")
    if winner_output_id is not None:
        if winner_output_id not in ids:
            raise InvalidInput("winner_output_id", "is not an answer of this comparison")
        if next(o for o in outputs if o.id == winner_output_id).status != "completed":
            raise Conflict("a failed answer cannot win")
        pairs = [(winner_output_id, other, "a") for other in ids if other != winner_output_id]
    else:
        pairs = [(a, b, "tie") for a, b in combinations(ids, 2)]
    with pool.connection() as conn, conn.transaction():
        evidence.replace_preferences(conn, comparison.id, user.id, pairs)
    log.info(
        "comparison picked",
        comparison_id=comparison.id,
        user_id=user.id,
        winner_output_id=winner_output_id,
    )
    return get_comparison(pool, comparison_id, user)


class LeaderboardEntry(BaseModel):
    model: str
    outputs: int
    thumbs_up: int
    thumbs_down: int
    thumbs_up_rate: float | None
    wilson_low: float | None
    wilson_high: float | None
    pairs: int
    win_rate: float | None
    judgements: int
    median_latency_ms: float | None
    cost_per_output: float | None
    cost_per_thumbs_up: float | None
    # with a judge: its pass and fail verdicts, pass rate and Wilson 95 % interval
    judge_pass: int = 0
    judge_fail: int = 0
    judge_pass_rate: float | None = None
    judge_low: float | None = None
    judge_high: float | None = None
    # both: the mean of the thumbs-up and judge pass rates, and of their intervals' bounds
    both_rate: float | None = None
    both_low: float | None = None
    both_high: float | None = None


RANKINGS = ("human", "judge", "both")


def _mean(a: float | None, b: float | None) -> float | None:
    return (a + b) / 2 if a is not None and b is not None else None


def leaderboard(
    pool: ConnectionPool,
    viewer: User,
    *,
    template_name: str | None = None,
    version: int | None = None,
    user_id: int | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    judge_id: int | None = None,
    rank_by: str = "human",
) -> list[LeaderboardEntry]:
    """Per model, over the viewer's outputs (admins: everyone's, or user_id's), optionally of one
    library template (and version): thumbs-up rate with its Wilson 95 % interval, pairwise win
    rate, judgements, median latency, cost per output and per thumbs-up; with judge_id, that
    judge's pass rate with its interval, and both rates' mean. Best first by the lower bound of
    rank_by: human (thumbs up), judge (pass rate) or both (their mean; judge and both need a
    judge). Raises InvalidInput naming rank_by or judge_id."""
    if rank_by not in RANKINGS:
        raise InvalidInput("rank_by", f"must be one of {', '.join(RANKINGS)}")
    if rank_by != "human" and judge_id is None:
        raise InvalidInput("judge_id", f"choose a judge to rank by {rank_by}")
    if judge_id is not None and (
        isinstance(judge_id, bool) or not isinstance(judge_id, int) or not 0 < judge_id < 2**63
    ):
        raise InvalidInput("judge_id", "must be a judge's id")
    template_id = templates.get_version(pool, template_name).template_id if template_name else None
    scope = user_id if viewer.is_admin else viewer.id
    window = {
        "user_id": scope,
        "template_id": template_id,
        "version": version,
        "created_after": created_after,
        "created_before": created_before,
    }
    judged: dict[str, judges_db.JudgedCounts] = {}
    with pool.connection() as conn:
        rows = evidence.leaderboard(conn, **window)
        if judge_id is not None:
            if judges_db.get_judge(conn, judge_id) is None:
                raise InvalidInput("judge_id", f"no judge {judge_id}")
            judged = {
                c.model: c for c in judges_db.leaderboard_judged(conn, judge_id=judge_id, **window)
            }
    entries = []
    for row in rows:
        rated = row.thumbs_up + row.thumbs_down
        interval = wilson_interval(row.thumbs_up, rated)
        total = float(row.total_cost) if row.total_cost is not None else None
        entries.append(
            LeaderboardEntry(
                model=row.model,
                outputs=row.outputs,
                thumbs_up=row.thumbs_up,
                thumbs_down=row.thumbs_down,
                thumbs_up_rate=row.thumbs_up / rated if rated else None,
                wilson_low=interval[0] if interval else None,
                wilson_high=interval[1] if interval else None,
                pairs=row.pairs,
                win_rate=float(row.pair_score) / row.pairs if row.pairs else None,
                judgements=rated + row.pairs,
                median_latency_ms=row.median_latency_ms,
                cost_per_output=float(row.cost_per_output)
                if row.cost_per_output is not None
                else None,
                cost_per_thumbs_up=total / row.thumbs_up
                if total is not None and row.thumbs_up
                else None,
                **_judged_fields(judged.get(row.model), rated, row.thumbs_up, interval),
            )
        )
    low = {"human": "wilson_low", "judge": "judge_low", "both": "both_low"}[rank_by]
    return sorted(
        entries,
        key=lambda e: (
            -(getattr(e, low) or 0.0),
            -(e.wilson_low or 0.0),
            -(e.win_rate or 0.0),
            e.model,
        ),
    )


def _judged_fields(
    counts: judges_db.JudgedCounts | None,
    rated: int,
    thumbs_up: int,
    interval: tuple[float, float] | None,
) -> dict[str, Any]:
    """A model's judge figures, and their mean with the thumbs-up figures."""
    if counts is None:
        return {}
    judged = counts.judge_pass + counts.judge_fail
    judge_interval = wilson_interval(counts.judge_pass, judged)
    human_rate = thumbs_up / rated if rated else None
    judge_rate = counts.judge_pass / judged if judged else None
    judge_low, judge_high = judge_interval or (None, None)
    human_low, human_high = interval or (None, None)
    return {
        "judge_pass": counts.judge_pass,
        "judge_fail": counts.judge_fail,
        "judge_pass_rate": judge_rate,
        "judge_low": judge_low,
        "judge_high": judge_high,
        "both_rate": _mean(human_rate, judge_rate),
        "both_low": _mean(human_low, judge_low),
        "both_high": _mean(human_high, judge_high),
    }


def suggest(
    entries: list[LeaderboardEntry], cost_ceiling: float | None = None
) -> LeaderboardEntry | None:
    """The model with the best lower bound of thumbs-up rate among those rated, within the cost
    ceiling per output when one is set (models of unknown cost are then left out)."""
    fitting = [
        e
        for e in entries
        if e.wilson_low is not None
        and (
            cost_ceiling is None
            or (e.cost_per_output is not None and e.cost_per_output <= cost_ceiling)
        )
    ]
    return max(fitting, key=lambda e: (e.wilson_low, e.win_rate or 0.0), default=None)


_JUDGE_FIELDS = ("judge_", "both_")


def leaderboard_csv(entries: list[LeaderboardEntry]) -> str:
    """The leaderboard as CSV, one row per model (text cells safe in a spreadsheet); the judge's
    columns only when a judge gave a verdict on some model."""
    judged = any(e.judge_pass + e.judge_fail for e in entries)
    fields = [f for f in LeaderboardEntry.model_fields if judged or not f.startswith(_JUDGE_FIELDS)]
    return csv_text(fields, (e.model_dump(include=set(fields)) for e in entries))
