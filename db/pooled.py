"""Use-cases are written for one connection, inside their caller's transaction; `pooled` runs one
on a connection of its own taken from a pool, for callers that have no transaction to share."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from db.pool import each_statement_commits

P = ParamSpec("P")
R = TypeVar("R")


def pooled(
    use_case: Callable[Concatenate[psycopg.Connection, P], R],
) -> Callable[Concatenate[ConnectionPool, P], R]:
    """use_case taking a pool in place of its connection: it runs on a connection of the pool in
    autocommit (each_statement_commits), so each of its statements commits alone, with no BEGIN
    and COMMIT round trips, and what it wraps in conn.transaction() commits as one."""

    @functools.wraps(use_case)
    def on_pool(pool: ConnectionPool, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with pool.connection() as conn, each_statement_commits(conn):
            return use_case(conn, *args, **kwargs)

    return on_pool
