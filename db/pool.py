"""How to reach the database: connections and pools, on the URL the caller gives."""

from __future__ import annotations

import contextlib
import select
from collections.abc import Iterator

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool


def connect(url: str, **kwargs) -> psycopg.Connection:
    """One plain connection with dict rows (for migrations and scripts)."""
    return psycopg.connect(url, row_factory=dict_row, **kwargs)


def sync_pool(url: str, *, max_size: int = 10) -> ConnectionPool:
    """An open pool of connections with dict rows, for the CLI, the dashboard and the API.

    It does not wait for the database at start: a connection is checked when it is taken (see
    check_quietly), so a database that is down answers each call with an error and the pool
    recovers when it is back.
    """
    return ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        check=check_quietly,
        # how long a caller waits for a connection: also how soon a down database is reported
        timeout=5,
        open=True,
        name="llmjobs",
    )


def check_quietly(conn: psycopg.Connection) -> None:
    """The check of a connection taken from a pool, with no round trip while its socket is quiet.

    A server that shuts down or ends a connection says so on the socket (a last error message,
    then the socket closes), which makes the idle connection's socket readable: only then is the
    connection pinged (psycopg_pool's check, one round trip), which raises for a dead connection,
    so the pool replaces it. Nothing is ever pending on an idle, healthy connection of ours (they
    never LISTEN), so a quiet socket needs no ping."""
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        quiet = not poller.poll(0)
    except (OSError, ValueError, psycopg.Error):  # closed already: the ping says so
        quiet = False
    if not quiet:
        ConnectionPool.check_connection(conn)


def async_pool_kwargs(url: str, *, max_size: int = 10) -> dict:
    """Arguments for psycopg_pool.AsyncConnectionPool, as procrastinate's connector takes them.

    Connections are not checked at each checkout (a round trip on every query of the worker's
    hot path); after a database outage the worker checks the whole pool once instead.
    """
    return {
        "conninfo": url,
        "min_size": 1,
        "max_size": max_size,
        "kwargs": {"row_factory": dict_row},
        "timeout": 10,
    }


@contextlib.contextmanager
def each_statement_commits(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """conn in autocommit for the block when no transaction is open on it: each statement then
    commits alone, with no BEGIN and COMMIT round trips. Inside an open transaction (or already
    in autocommit), conn is left as it is."""
    if conn.autocommit or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        yield conn
        return
    conn.autocommit = True
    try:
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):  # a broken connection: its error is raised
            conn.autocommit = False
