"""Context fetchers: named functions that build a context from what the system knows.

A fetcher takes a database connection, the submitting user and keyword arguments and returns a
dict. Submit merges it under the explicit context (explicit keys win). Add one with `@fetcher`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from db import outputs
from db.models import User
from tasks.errors import InvalidInput

Fetcher = Callable[..., dict[str, Any]]
FETCHERS: dict[str, Fetcher] = {}


def fetcher(name: str) -> Callable[[Fetcher], Fetcher]:
    """Register a context fetcher under name."""

    def register(func: Fetcher) -> Fetcher:
        FETCHERS[name] = func
        return func

    return register


@fetcher("user_profile")
def user_profile(conn: psycopg.Connection, user: User, **_: Any) -> dict[str, Any]:
    """The submitting user's profile and how many outputs they have by status."""
    return {
        "user": {"name": user.name, "email": user.email, "role": user.role},
        "output_counts": outputs.count_user_outputs(conn, user.id),
    }


@fetcher("current_time")
def current_time(conn: psycopg.Connection, user: User, **_: Any) -> dict[str, Any]:
    """Today's date and the time now, in UTC."""
    now = datetime.now(UTC)
    return {"today": now.date().isoformat(), "now": now.isoformat(timespec="seconds")}


def fetch_context(
    conn: psycopg.Connection, name: str, user: User, args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run the named fetcher. Raises InvalidInput(field="fetcher") for an unknown name or bad
    arguments."""
    func = FETCHERS.get(name)
    if func is None:
        known = ", ".join(sorted(FETCHERS))
        raise InvalidInput("fetcher", f"unknown context fetcher {name!r} (known: {known})")
    if args is not None and not isinstance(args, dict):
        raise InvalidInput("fetcher_args", "must be a JSON object")
    try:
        return func(conn, user, **(args or {}))
    except TypeError as exc:
        raise InvalidInput("fetcher_args", str(exc)) from exc
