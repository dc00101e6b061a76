"""How errors become HTTP answers. Every error body is JSON:

- 422: `{"detail": [{"field": ..., "message": ...}]}`, one entry per problem, for request
  validation and for tasks.errors.InvalidInput alike (InvalidRows: one entry per bad row,
  field `rows[<number from 1>].<field>`, for the first 20, then `{"field": "rows", "message":
  "and N more rows"}`);
- anything else: `{"detail": "<message>"}`.

A job-creating request refused before its route checked its bearer token has the token checked
by the handler first: a bad token is a 401 whatever else is wrong.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from api.deps import checked_first
from api.idempotency import (
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENCY_KEY_RULE,
    RateLimited,
    Unauthenticated,
)
from tasks.errors import Conflict, Forbidden, InvalidInput, InvalidRows, NotFound
from tasks.llm import rendering
from tasks.logs import get_logger

log = get_logger("llmjobs.api")
_SOURCES = ("body", "query", "path", "header", "cookie")
_STATUS = {NotFound: 404, Forbidden: 403, Conflict: 409}


def field_errors(errors: list[tuple[str, str]]) -> JSONResponse:
    body = {"detail": [{"field": field, "message": message} for field, message in errors]}
    return JSONResponse(body, status_code=422)


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    source, rest = (parts[0], parts[1:]) if parts and parts[0] in _SOURCES else ("body", parts)
    if source == "body" and rest and loc[1:] and isinstance(loc[1], int):
        rest = []  # a JSON syntax error's position, not a field
    if source == "header":
        return "-".join(word.capitalize() for word in ".".join(rest).split("-")) or "header"
    return ".".join(rest) or source


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "cannot parse")
        return f"is not valid JSON: {reason} at character {error['loc'][-1]}"
    if error.get("type") == "string_pattern_mismatch" and _field(error.get("loc", ())) == (
        IDEMPOTENCY_KEY_HEADER
    ):
        return IDEMPOTENCY_KEY_RULE  # the rule in words, not the pattern
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")


async def _validation_failed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return field_errors([(_field(e.get("loc", ())), _message(e)) for e in exc.errors()])


async def _invalid_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInput)
    return field_errors([(exc.field, exc.message)])


async def _invalid_rows(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidRows)
    errors = [(f"rows[{n}].{field}", message) for n, field, message in exc.rows]
    if exc.unreported:
        errors.append(("rows", f"and {exc.unreported} more rows"))
    return field_errors(errors)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    status = next(code for kind, code in _STATUS.items() if isinstance(exc, kind))
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    return JSONResponse(
        {"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)}
    )


def _unparsable(cause: BaseException) -> str:
    if isinstance(cause, UnicodeError):
        return "is not valid UTF-8"
    if isinstance(cause, RecursionError):
        return rendering.NESTED_TOO_DEEPLY
    return "cannot be parsed as JSON"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI's answer to a body it could not decode: an input error like any other.
        return field_errors([("body", _unparsable(exc.__cause__))])
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = exc.headers
    if exc.status_code == 405 and (allowed := _documented_methods(request)):
        headers = {**(headers or {}), "Allow": allowed}
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)


@functools.cache
def _path_pattern(template: str) -> re.Pattern[str]:
    return compile_path(template)[0]


def _documented_methods(request: Request) -> str:
    """The methods the OpenAPI document gives the request's path. Starlette's 405 names only the
    first route matched, and a path may have one route per method (GET and POST /batches)."""
    path = request.scope["path"].removeprefix(request.scope.get("root_path", ""))
    methods = {
        method.upper()
        for template, operations in request.app.openapi()["paths"].items()
        if _path_pattern(template).match(path)
        for method in operations
    }
    return ", ".join(sorted(methods))


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable", path=request.url.path, error=type(exc).__name__)
    return JSONResponse(
        {"detail": "the database is unavailable; retry shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", path=request.url.path)
    return JSONResponse({"detail": "internal error"}, status_code=500)


async def _unauthenticated(request: Request, exc: Exception) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse({"detail": str(exc)}, status_code=401, headers=headers)


Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def _token_checked_first(handler: Handler) -> Handler:
    """handler, after the request's bearer token if it is still unchecked (deps.checked_first)."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        try:
            await checked_first(request)
        except Unauthenticated as refused:
            return await _unauthenticated(request, refused)
        except psycopg.OperationalError as unavailable:
            return await _database_unavailable(request, unavailable)
        return await handler(request, exc)

    return handle


def install(app: FastAPI) -> None:
    handlers: list[tuple[type[Exception], Handler]] = [
        (Unauthenticated, _unauthenticated),
        (RequestValidationError, _validation_failed),
        (InvalidInput, _invalid_input),
        (InvalidRows, _invalid_rows),
        *((kind, _refused) for kind in _STATUS),
        (RateLimited, _rate_limited),
        (HTTPException, _http_error),
        (psycopg.OperationalError, _database_unavailable),
        (Exception, _unexpected),
    ]
    for kind, handler in handlers:
        app.add_exception_handler(kind, _token_checked_first(handler))
