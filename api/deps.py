"""What routes depend on: the app's connection pool, the authenticated user and, for the routes
that queue jobs, the rate limit and Idempotency-Key around the use-case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, Header, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from db.models import User
from tasks import accounts, api_support
from tasks.submit import Submission

Answer = TypeVar("Answer", bound=BaseModel)

bearer = HTTPBearer(
    auto_error=False,
    description="An API token, created with `llmjobs tokens create <user>`.",
)


def get_pool(request: Request) -> ConnectionPool:
    return request.app.state.pool


def current_user(
    request: Request,
    pool: Annotated[ConnectionPool, Depends(get_pool)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The user owning the bearer token; 401 when it is missing, unknown or revoked."""
    user = accounts.authenticate(pool, credentials.credentials) if credentials else None
    if user is None:
        raise HTTPException(
            status_code=401,
            detail="missing, unknown or revoked bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Read by the access log, which runs outside the route.
    request.state.user_id = user.id
    return user


Pool = Annotated[ConnectionPool, Depends(get_pool)]
CurrentUser = Annotated[User, Depends(current_user)]


REPLAYED_HEADER = "Idempotent-Replayed"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=api_support.IDEMPOTENCY_KEY_HEADER,
        pattern=api_support.IDEMPOTENCY_KEY_PATTERN,
        description="Any unique string (e.g. a UUID): a repeat within 24 h queues nothing and "
        "gets the first answer; reusing it for a different request is a 422.",
    ),
]


class _JobCreation:
    """What a job-creating route needs: the caller, the rate limit and the Idempotency-Key."""

    def __init__(
        self,
        request: Request,
        response: Response,
        pool: Pool,
        user: CurrentUser,
        idempotency_key: IdempotencyKey = None,
    ):
        self.request = request
        self.response = response
        self.pool = pool
        self.user = user
        self.idempotency_key = idempotency_key

    def run(
        self,
        create: Callable[[ConnectionPool], Answer],
        *,
        body: Any,
        answer_type: type[BaseModel] = Submission,
    ) -> Answer:
        """create under the rate limit and idempotency key; sets the answer's status code."""
        accepted = api_support.create_job(
            self.pool,
            self.user,
            create,
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


JobCreation = Annotated[_JobCreation, Depends()]
