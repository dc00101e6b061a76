"""What the HTTP API adds to the shared use-cases: a per-user rate limit on job creation and
idempotent job creation (the Idempotency-Key header).

The limit and the keys live in Postgres, so they hold across API processes. A job-creating
request runs on one pooled connection: its bearer token is checked in a statement of its own, then
one transaction holds the idempotency key, the rate-limit count, the output, its job and the
remembered answer, which commit together or not at all (the use-case, e.g. tasks.outputs.submit_on,
runs on that connection, inside that transaction).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from db import api as api_db
from db.models import User
from db.pool import each_statement_commits
from tasks import accounts
from tasks.config import load_settings
from tasks.errors import Conflict, InvalidInput, LLMJobsError
from tasks.logs import get_logger
from tasks.outputs import Submission

log = get_logger("llmjobs.api")

RATE_LIMIT_ENV = "LLMJOBS_API_RATE_LIMIT"
DEFAULT_RATE_LIMIT = 60
RATE_WINDOW_SECONDS = 60
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
IDEMPOTENCY_KEY_RULE = "must be 1 to 255 visible ASCII characters"
ACCEPTED = 202


class Unauthenticated(LLMJobsError):
    """No live API token: missing, unknown or revoked (which of them is not told)."""

    def __init__(self) -> None:
        super().__init__("missing, unknown or revoked bearer token")


class RateLimited(LLMJobsError):
    """The user queued as many jobs as the limit allows in the current window."""

    def __init__(self, limit: int, retry_after: int):
        super().__init__(f"rate limit of {limit} jobs per minute reached; retry in {retry_after} s")
        self.limit = limit
        self.retry_after = retry_after


def rate_limit_from_env() -> int:
    """Jobs a user may create per minute: LLMJOBS_API_RATE_LIMIT, 60 when unset, 0 for no limit.

    Raises SettingsError (a ValueError) naming the variable when it is not a whole number >= 0.
    """
    return load_settings().api_rate_limit


def fingerprint(operation: str, body: Any) -> str:
    """A digest of what a request asks for, to tell a repeat from a different request."""
    canonical = json.dumps(
        {"operation": operation, "body": body}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Accepted:
    submission: BaseModel
    status_code: int = ACCEPTED
    replayed: bool = False


def check_idempotency_key(key: str) -> str:
    """The key if usable; InvalidInput(field="Idempotency-Key") otherwise."""
    if not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
        raise InvalidInput(IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_RULE)
    return key


def create_job(
    pool: ConnectionPool,
    user: User,
    create: Callable[[psycopg.Connection], BaseModel],
    *,
    operation: str,
    body: Any,
    idempotency_key: str | None = None,
    rate_limit: int = DEFAULT_RATE_LIMIT,
    window_seconds: int = RATE_WINDOW_SECONDS,
    key_ttl_seconds: int = IDEMPOTENCY_TTL_SECONDS,
    answer_type: type[BaseModel] = Submission,
) -> Accepted:
    """Run create (a use-case such as submit_on, re_run_on or regenerate_on, on the connection
    it is given) under the user's rate limit and, with an idempotency key, at most once per key.
    create must not commit: it runs inside the transaction that holds the key and the limit.

    A repeat of a key (same user, within key_ttl_seconds) returns the first answer with
    replayed=True and queues nothing; a concurrent repeat waits for the first to finish. Only
    accepted requests are remembered and counted: a refused one leaves the key free.

    Raises InvalidInput (a bad key, or a key first used for a different operation or body),
    RateLimited, Conflict (the key's first request vanished while we waited: retry), and
    whatever create raises.
    """
    limits = _Limits(idempotency_key, rate_limit, window_seconds, key_ttl_seconds)
    with pool.connection() as conn:
        return _create_job_on(conn, user, create, operation, body, limits, answer_type)


def create_job_with_token(
    pool: ConnectionPool,
    token: str,
    create: Callable[[psycopg.Connection], BaseModel],
    *,
    signed_in: Callable[[User], None],
    operation: str,
    body: Any,
    idempotency_key: str | None = None,
    rate_limit: int = DEFAULT_RATE_LIMIT,
    window_seconds: int = RATE_WINDOW_SECONDS,
    key_ttl_seconds: int = IDEMPOTENCY_TTL_SECONDS,
    answer_type: type[BaseModel] = Submission,
) -> Accepted:
    """create_job for the owner of an API token, on one pooled connection: the token is checked
    first (accounts.authenticate_on, in a statement committed on its own, so a refused request still
    counts as the token's use), signed_in(user) is called, then the job is created as create_job
    does.

    Raises Unauthenticated for a missing, unknown or revoked token (nothing else is done), then
    whatever create_job raises.
    """
    limits = _Limits(idempotency_key, rate_limit, window_seconds, key_ttl_seconds)
    with pool.connection() as conn:
        with each_statement_commits(conn):
            user = accounts.authenticate_on(conn, token)
        if user is None:
            raise Unauthenticated()
        signed_in(user)
        return _create_job_on(conn, user, create, operation, body, limits, answer_type)


@dataclass(frozen=True)
class _Limits:
    idempotency_key: str | None
    rate_limit: int
    window_seconds: int
    key_ttl_seconds: int


def _create_job_on(
    conn: psycopg.Connection,
    user: User,
    create: Callable[[psycopg.Connection], BaseModel],
    operation: str,
    body: Any,
    limits: _Limits,
    answer_type: type[BaseModel],
) -> Accepted:
    key = limits.idempotency_key
    request_hash = ""
    if key is not None:
        check_idempotency_key(key)
        request_hash = fingerprint(operation, body)
    # Only the key and the limit need a transaction around the job's creation: each use-case is
    # atomic on its own (one statement for a single job, a transaction of its own otherwise), so
    # without them its statements commit alone, as they do on a pool (db.pooled).
    held = key is not None or bool(limits.rate_limit)
    with conn.transaction() if held else each_statement_commits(conn):
        if key is not None and not api_db.claim_idempotency_key(
            conn, user.id, key, request_hash=request_hash, ttl_seconds=limits.key_ttl_seconds
        ):
            return _replay(conn, user, key, request_hash, answer_type)
        if limits.rate_limit and not api_db.hit_rate_limit(
            conn, user.id, limit=limits.rate_limit, window_seconds=limits.window_seconds
        ):
            retry_after = api_db.rate_limit_retry_after(
                conn, user.id, window_seconds=limits.window_seconds
            )
            log.info(
                "rate limited", user_id=user.id, limit=limits.rate_limit, retry_after=retry_after
            )
            raise RateLimited(limits.rate_limit, retry_after)
        submission = create(conn)
        if key is not None:
            api_db.store_idempotent_response(
                conn,
                user.id,
                key,
                status_code=ACCEPTED,
                response=submission.model_dump(mode="json"),
            )
    return Accepted(submission)


def _replay(
    conn: psycopg.Connection,
    user: User,
    key: str,
    request_hash: str,
    answer_type: type[BaseModel] = Submission,
) -> Accepted:
    stored = api_db.get_idempotency_key(conn, user.id, key)
    if stored is None or stored.response is None or stored.status_code is None:
        raise Conflict(
            f"the request holding {IDEMPOTENCY_KEY_HEADER} {key!r} did not finish; retry"
        )
    if stored.request_hash != request_hash:
        raise InvalidInput(
            IDEMPOTENCY_KEY_HEADER,
            "was already used for a different request; send a new key for a new request",
        )
    submission = answer_type.model_validate(stored.response)
    log.info("idempotent replay", user_id=user.id, operation=stored_operation(submission))
    return Accepted(submission, status_code=stored.status_code, replayed=True)


def stored_operation(answer: BaseModel) -> str:
    """What a replayed answer created, for the log."""
    found = getattr(answer, "output_id", None) or getattr(answer, "comparison_id", None)
    return f"{type(answer).__name__} {found}"
