"""The pools of the dashboard, the API and the CLI: a connection taken from the pool is checked
without a round trip while its socket is quiet, and replaced when the server has ended it."""

from __future__ import annotations

import time

import psycopg
from psycopg_pool import ConnectionPool

from db.pool import sync_pool


def test_a_healthy_connection_is_taken_without_a_ping_and_an_ended_one_is_replaced(
    database_url, monkeypatch
):
    pings: list[int] = []
    ping = ConnectionPool.check_connection

    def counted(conn):
        pings.append(conn.info.backend_pid)
        return ping(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted))
    pool = sync_pool(database_url, max_size=1)
    try:
        for _ in range(3):
            with pool.connection() as conn:
                backend = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        assert pings == []
        # The server ends that connection, as it does to every one when it shuts down.
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
            deadline = time.monotonic() + 10
            while (
                time.monotonic() < deadline
                and admin.execute(  # gone: its last word is sent
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend,)
                ).fetchone()
            ):
                time.sleep(0.05)
        with pool.connection() as conn:
            fresh = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        assert pings == [backend]  # pinged once, found dead, replaced
        assert fresh != backend
    finally:
        pool.close()
