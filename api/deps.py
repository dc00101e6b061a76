"""What routes depend on: the app's connection pool, the authenticated user and, for the routes
that queue jobs, the bearer token, the rate limit and the Idempotency-Key around the use-case.

FastAPI runs a sync dependency in its threadpool, a thread handoff each way, so the dependencies
that need no database are async. A job-creating route reaches the threadpool once: its token is
checked there, on the connection that then queues the job (see `checked_first` for the answers
given before that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

import psycopg
from fastapi import Depends, Header, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api import idempotency
from api.idempotency import Unauthenticated
from db.models import User
from tasks import accounts
from tasks.errors import Forbidden
from tasks.outputs import Submission

Answer = TypeVar("Answer", bound=BaseModel)

bearer = HTTPBearer(
    auto_error=False,
    description="An API token, created with `llmjobs tokens create <user>`.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
# request.state: the bearer token of a job-creating request until its route checks it
_UNCHECKED_TOKEN = "unchecked_token"


async def get_pool(request: Request) -> ConnectionPool:
    return request.app.state.pool


Pool = Annotated[ConnectionPool, Depends(get_pool)]


def _signed_in(request: Request, user: User) -> None:
    # Read by the access log, which runs outside the route.
    request.state.user_id = user.id


def current_user(request: Request, pool: Pool, credentials: Credentials) -> User:
    """The user owning the bearer token; 401 when it is missing, unknown or revoked."""
    user = accounts.authenticate(pool, credentials.credentials) if credentials else None
    if user is None:
        raise Unauthenticated()
    _signed_in(request, user)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def current_admin(user: CurrentUser) -> User:
    """The signed-in user, when an admin; 403 otherwise (before the body or query is read)."""
    if not user.is_admin:
        raise Forbidden("admins only")
    return user


CurrentAdmin = Annotated[User, Depends(current_admin)]


async def _bearer_token(request: Request, credentials: Credentials) -> str:
    """The bearer token, not yet checked (401 at once when there is none)."""
    if credentials is None:
        raise Unauthenticated()
    setattr(request.state, _UNCHECKED_TOKEN, credentials.credentials)
    return credentials.credentials


async def checked_first(request: Request) -> User | None:
    """For a request refused before its route checked its bearer token (invalid body, path or
    header, bad rows, ...): check the token now, so that a bad one is answered 401 whatever
    else is wrong, as when tokens are checked first. Raises Unauthenticated; returns the user,
    or None when there was nothing to check."""
    token = getattr(request.state, _UNCHECKED_TOKEN, None)
    if token is None:
        return None
    setattr(request.state, _UNCHECKED_TOKEN, None)
    user = await run_in_threadpool(accounts.authenticate, request.app.state.pool, token)
    if user is None:
        raise Unauthenticated()
    _signed_in(request, user)
    return user


REPLAYED_HEADER = "Idempotent-Replayed"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=idempotency.IDEMPOTENCY_KEY_HEADER,
        pattern=idempotency.IDEMPOTENCY_KEY_PATTERN,
        description="Any unique string (e.g. a UUID): a repeat within 24 h queues nothing and "
        "gets the first answer; reusing it for a different request is a 422.",
    ),
]


class _JobCreation:
    """What a job-creating route needs: the caller's token, the rate limit and the
    Idempotency-Key. `user` is known once `run` has checked the token."""

    def __init__(
        self,
        request: Request,
        response: Response,
        pool: ConnectionPool,
        token: str,
        idempotency_key: str | None,
    ):
        self.request = request
        self.response = response
        self.pool = pool
        self.token = token
        self.idempotency_key = idempotency_key
        self.user: User

    def _signed_in(self, user: User) -> None:
        self.user = user
        _signed_in(self.request, user)

    def run(
        self,
        create: Callable[[psycopg.Connection], Answer],
        *,
        body: Any,
        answer_type: type[BaseModel] = Submission,
    ) -> Answer:
        """Check the token (401), then create (on the connection that holds the rate limit and
        idempotency key, inside their transaction) under them; sets the answer's status code.
        create may read `self.user`."""
        setattr(self.request.state, _UNCHECKED_TOKEN, None)  # checked here, whatever happens
        accepted = idempotency.create_job_with_token(
            self.pool,
            self.token,
            create,
            signed_in=self._signed_in,
            operation=f"{self.request.method} {self.request.url.path}",
            body=body,
            idempotency_key=self.idempotency_key,
            rate_limit=self.request.app.state.rate_limit,
            answer_type=answer_type,
        )
        self.response.status_code = accepted.status_code
        if accepted.replayed:
            self.response.headers[REPLAYED_HEADER] = "true"
        return cast(Answer, accepted.submission)


async def _job_creation(
    request: Request,
    response: Response,
    pool: Pool,
    token: Annotated[str, Depends(_bearer_token)],
    idempotency_key: IdempotencyKey = None,
) -> _JobCreation:
    return _JobCreation(request, response, pool, token, idempotency_key)


JobCreation = Annotated[_JobCreation, Depends(_job_creation)]
