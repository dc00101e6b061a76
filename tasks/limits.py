"""Provider limits per model: requests per minute, tokens per minute and calls in flight, held
by every worker together in PostgreSQL.

A limit names a model, or a prefix ending in `/` (`openai/`); a model takes its exact limit,
else the longest prefix of its name, and has its own bucket. Limits come from the environment
(LLMJOBS_MODEL_LIMITS, written by each worker at its start, unless an admin set that pattern)
and from admins (dashboard Setup, `llmjobs limits`). Workers read them at every fetch: a change
applies at once, without a restart. How the fetch takes capacity: migration 0017 and
docs/architecture.md ("Provider limits").
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Literal

from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from db import limits
from db.batches import Batch
from db.limits import LimitUse, ModelLimit
from db.models import User
from tasks.config import LimitSpec, get_settings, limit_problem, model_name_problem
from tasks.errors import Forbidden, InvalidInput
from tasks.logs import get_logger

log = get_logger("llmjobs.limits")

# What a wait is for, in words.
REASONS = {
    "paused": "paused after the provider answered 429",
    "concurrent": "calls in flight",
    "rpm": "requests per minute",
    "tpm": "tokens per minute",
}
# The answer's share of a call's tokens before the model's answers are known (as the fetch).
TYPICAL_COMPLETION = 256


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise Forbidden("admins only")


def check(
    pattern: object, rpm: object = None, tpm: object = None, concurrent: object = None
) -> LimitSpec:
    """A limit from a caller's values; InvalidInput names the field at fault (model, rpm, tpm or
    concurrent)."""
    if not isinstance(pattern, str):
        raise InvalidInput("model", "give a model's name or a prefix ending in /")
    pattern = pattern.strip()
    caps: dict[str, object] = {"rpm": rpm, "tpm": tpm, "concurrent": concurrent}
    problem = limit_problem(pattern, caps)
    if problem is None:
        return LimitSpec(pattern, rpm, tpm, concurrent)  # type: ignore[arg-type]
    field = next((name for name in caps if problem.startswith(name)), "model")
    if problem.startswith("give at least"):
        field = "rpm"
    raise InvalidInput(field, problem)


def list_limits(pool: ConnectionPool) -> list[ModelLimit]:
    """Every limit, by pattern."""
    with pool.connection() as conn:
        return limits.list_limits(conn)


def set_limit(
    pool: ConnectionPool,
    admin: User,
    pattern: object,
    *,
    rpm: object = None,
    tpm: object = None,
    concurrent: object = None,
) -> ModelLimit:
    """Set the limit of a model or prefix (replacing its caps). Raises Forbidden, InvalidInput."""
    _require_admin(admin)
    spec = check(pattern, rpm, tpm, concurrent)
    with pool.connection() as conn:
        saved = limits.set_limit(
            conn,
            spec.pattern,
            rpm=spec.rpm,
            tpm=spec.tpm,
            max_concurrent=spec.max_concurrent,
            updated_by=admin.name,
        )
    log.info(
        "limit set",
        pattern=spec.pattern,
        rpm=spec.rpm,
        tpm=spec.tpm,
        concurrent=spec.max_concurrent,
        user_id=admin.id,
    )
    return saved


def clear_limit(pool: ConnectionPool, admin: User, pattern: object) -> bool:
    """Remove the limit of a model or prefix; False when it had none. Raises Forbidden,
    InvalidInput (a name no limit can have)."""
    _require_admin(admin)
    if not isinstance(pattern, str) or not pattern.strip():
        raise InvalidInput("model", "give a model's name or a prefix ending in /")
    if problem := model_name_problem(pattern.strip()):
        raise InvalidInput("model", f"the model or prefix {problem}")
    with pool.connection() as conn:
        cleared = limits.clear_limit(conn, pattern.strip())
    log.info("limit cleared", pattern=pattern.strip()[:200], cleared=cleared, user_id=admin.id)
    return cleared


def use(pool: ConnectionPool, admin: User) -> list[LimitUse]:
    """Each limited model (and each model a 429 paused in the last hour): its limit, its use in
    the current minute, calls in flight, outputs waiting, 429s in the last hour, and why it
    waits now. Raises Forbidden."""
    _require_admin(admin)
    settings = get_settings()
    with pool.connection() as conn:
        return limits.limits_use(conn, minute=settings.limit_minute, stalled=settings.stalled_after)


class Limit(BaseModel):
    """A provider limit as the command line and the API show it, held by every worker together."""

    pattern: str = Field(description="The model, or the prefix ending in /, it limits.")
    rpm: int | None = Field(None, description="Requests per minute; null: no cap.")
    tpm: int | None = Field(None, description="Tokens per minute; null: no cap.")
    concurrent: int | None = Field(None, description="Calls in flight; null: no cap.")
    source: Literal["env", "admin"] = Field(
        description="env: written by workers from LLMJOBS_MODEL_LIMITS; admin: set by an "
        "admin (the environment no longer changes it)."
    )
    updated_by: str
    updated_at: datetime

    @classmethod
    def of(cls, row: ModelLimit) -> Limit:
        return cls.model_validate({**row.model_dump(), "concurrent": row.max_concurrent})


class ModelUse(BaseModel):
    """A model under a limit (or paused by a 429) seen in the last hour or waiting now."""

    model: str
    pattern: str | None = Field(description="The limit it takes; null when it has none.")
    requests_last_minute: int = Field(description="Calls started in the last minute.")
    tokens_last_minute: int = Field(
        description="Their tokens: used, or estimated while the call runs."
    )
    in_flight: int = Field(description="Calls running now.")
    waiting: int = Field(description="Its outputs waiting to start.")
    rate_limited_last_hour: int = Field(description="429s the provider answered in the last hour.")
    paused_until: datetime | None = Field(
        None, description="Every worker's calls wait until then, after a 429."
    )
    waits_for: Literal["paused", "concurrent", "rpm", "tpm"] | None = Field(
        None,
        description="Why its next call would wait now (a 429's pause, calls in flight, requests "
        "or tokens per minute); null: it would start.",
    )
    reason: str | None = Field(None, description="waits_for in words.")

    @classmethod
    def of(cls, row: LimitUse) -> ModelUse:
        found = {**row.model_dump(), "waits_for": row.blocked}
        return cls.model_validate({**found, "reason": REASONS.get(row.blocked or "")})


class LimitsOverview(BaseModel):
    limits: list[Limit] = Field(description="Every limit, by pattern.")
    models: list[ModelUse] = Field(description="The use of each limited model.")


def overview(pool: ConnectionPool, admin: User) -> LimitsOverview:
    """Every limit, and the use of each model seen under one (see `use`). Raises Forbidden."""
    _require_admin(admin)
    settings = get_settings()
    with pool.connection() as conn:
        rows = limits.list_limits(conn)
        used = limits.limits_use(conn, minute=settings.limit_minute, stalled=settings.stalled_after)
    return LimitsOverview(
        limits=[Limit.of(row) for row in rows],
        models=[ModelUse.of(row) for row in used if row.model is not None],
    )


class Pace(BaseModel):
    """How fast a model's limit lets its calls through, and why its calls wait now."""

    model: str
    pattern: str | None = None
    reason: str | None = None  # a key of REASONS, None when calls start now
    paused_until: datetime | None = None
    calls_per_minute: float | None = None  # None: no rate cap

    @property
    def waiting_for(self) -> str | None:
        """'waiting for the openai/gpt-4o limit (requests per minute)', or None."""
        if self.reason is None:
            return None
        what = self.pattern or self.model
        return f"waiting for the {what} limit ({REASONS[self.reason]})"

    def finish(self, calls: int, now: datetime | None = None) -> datetime | None:
        """When `calls` more calls will have started at this pace (None: no rate cap)."""
        if not self.calls_per_minute or calls <= 0:
            return None
        start = max(now or datetime.now(UTC), self.paused_until or datetime.min.replace(tzinfo=UTC))
        minute = get_settings().limit_minute
        return start + timedelta(seconds=calls / self.calls_per_minute * minute)


def pace(pool: ConnectionPool, model: str) -> Pace:
    """The pace of a model's calls: its limit, the calls per minute it allows (the tighter of
    rpm and tpm at the model's typical call), and what its calls wait for now."""
    settings = get_settings()
    with pool.connection() as conn:
        wait = limits.model_wait(
            conn, model, minute=settings.limit_minute, stalled=settings.stalled_after
        )
    rates = []
    if wait.rpm:
        rates.append(float(wait.rpm))
    if wait.tpm:
        tokens = wait.tokens_per_call or TYPICAL_COMPLETION
        rates.append(wait.tpm / max(1.0, tokens))
    return Pace(
        model=model,
        pattern=wait.pattern,
        reason=wait.blocked,
        paused_until=wait.paused_until,
        calls_per_minute=min(rates) if rates else None,
    )


def pause_seconds(hint: float | None) -> float:
    """How long a 429 pauses its model: the provider's hint (Retry-After, x-ratelimit-reset-*),
    else one second, at most the retry cap."""
    settings = get_settings()
    seconds = hint if hint is not None and math.isfinite(hint) and hint > 0 else 1.0
    return min(seconds, max(1.0, settings.retry_cap))


class BatchPace(BaseModel):
    """How a model's rate limit paces the rows of a batch still waiting to start."""

    pace: Pace
    waiting: int  # rows not started yet
    finish: datetime  # when they will all have started at the limit's pace


def batch_pace(pool: ConnectionPool, batch: Batch, now: datetime | None = None) -> BatchPace | None:
    """The pace of a batch (one its viewer may see) under its model's rate limit (rpm or tpm);
    None when the model has none or no row of the batch waits to start."""
    if not batch.unfinished:
        return None
    found = pace(pool, batch.model)
    if found.calls_per_minute is None:
        return None
    with pool.connection() as conn:
        waiting = limits.batch_waiting(conn, batch.id)
    finish = found.finish(waiting, now)
    if finish is None:
        return None
    return BatchPace(pace=found, waiting=waiting, finish=finish)
