"""A big backlog drains at the rate of a short queue: the worker's fetch reads the jobs it takes
and their outputs, never the whole backlog, with the statistics a batch refreshes as it is queued
and without any (jobs written by a path that leaves them to autovacuum)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from db import queues as queues_db
from db.queries import queries
from tasks import batches
from tasks import outputs as jobs
from tasks.config import LLM_TASK

BACKLOG = 4000
TAKEN = 10


def _rows(n: int) -> list[dict[str, str]]:
    return [{"concept": f"c{i}"} for i in range(n)]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _explain_fetch(database_url: str) -> tuple[dict[str, Any], float, int]:
    """The plan of the worker's fetch of TAKEN jobs, run (then rolled back) in a new session as a
    running worker runs it; the pages of procrastinate's jobs table it read per job taken; the
    pages of that table."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        params = {
            "queues": None,
            "worker_id": None,
            "count": TAKEN,
            "task": LLM_TASK,
            "minute": 60,
            "stalled": 30,
        }
        # a first fetch plans the statements inside the function, as a running worker has
        conn.execute(queries["fetch_jobs"], {**params, "count": 1})
        before = conn.execute(PAGES_READ).fetchone()["pages"]
        found = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + queries["fetch_jobs"], params
        ).fetchone()
        read = conn.execute(PAGES_READ).fetchone()["pages"] - before
        pages = conn.execute(
            "SELECT pg_relation_size('procrastinate_jobs') / current_setting('block_size')::int"
            " AS pages"
        ).fetchone()["pages"]
        conn.rollback()
    return found["QUERY PLAN"][0]["Plan"], read / TAKEN, pages


# pages of procrastinate's jobs table (not its indexes) read by this transaction so far
PAGES_READ = "SELECT pg_stat_get_xact_blocks_fetched('procrastinate_jobs'::regclass) AS pages"


def _assert_fetch_reads_what_it_takes(database_url: str) -> None:
    plan, read_per_job, pages = _explain_fetch(database_url)
    nodes = list(_nodes(plan))
    outputs_read = [
        n["Actual Rows"] * n["Actual Loops"]
        for n in nodes
        if n.get("Relation Name") == "llm_outputs" and "Scan" in n["Node Type"]
    ]
    assert outputs_read and max(outputs_read) <= TAKEN, nodes
    assert (
        next(n for n in nodes if n.get("Function Name") == "llmjobs_fetch_jobs")["Actual Rows"]
        == TAKEN
    )
    # taking a job reads a few pages of the table (the job, the rows its checks look at);
    # collecting the backlog to sort it reads every page holding a waiting job
    assert read_per_job < pages / 2, (read_per_job, pages)


async def test_a_batch_drains_with_fresh_statistics(database_url, pool, analyst, run_worker):
    made = batches.submit_batch(
        pool,
        user=analyst,
        template="Explain {{concept}}",
        model="offline/echo",
        rows=_rows(BACKLOG),
    )
    assert made.total == BACKLOG
    with pool.connection() as conn:
        counted = _counted(conn)
    # ANALYZE counted the rows the batch wrote (-1: never analyzed)
    assert {name: tuples >= BACKLOG for name, tuples in counted.items()} == {
        "procrastinate_jobs": True,
        "llm_outputs": True,
    }

    def some_done() -> bool:
        return batches.get_batch(pool, made.id, analyst).completed >= 50

    await run_worker(until=some_done, concurrency=10)
    _assert_fetch_reads_what_it_takes(database_url)


async def test_a_backlog_without_statistics_drains(database_url, pool, analyst, run_worker):
    # written as the use-cases write it, but without the ANALYZE that ends their transaction
    with pool.connection() as conn:
        prepared = jobs.prepare_many(
            conn, template="Explain {{concept}}", model="offline/echo", contexts=_rows(BACKLOG)
        )
    with pool.connection() as conn, conn.transaction():
        jobs.write_many(conn, prepared, analyst)
    with pool.connection() as conn:
        never = conn.execute(
            "SELECT count(*) AS n FROM pg_class "
            "WHERE relname IN ('procrastinate_jobs', 'llm_outputs') AND reltuples < 0"
        ).fetchone()["n"]
    assert never == 2

    def some_done() -> bool:
        with pool.connection() as conn:
            return (
                conn.execute(
                    "SELECT count(*) AS n FROM llm_outputs WHERE status = 'completed'"
                ).fetchone()["n"]
                >= 50
            )

    await run_worker(until=some_done, concurrency=10)
    _assert_fetch_reads_what_it_takes(database_url)


def _counted(conn: psycopg.Connection) -> dict[str, float]:
    rows = conn.execute(
        "SELECT relname, reltuples FROM pg_class "
        "WHERE relname IN ('procrastinate_jobs', 'llm_outputs')"
    ).fetchall()
    return {r["relname"]: r["reltuples"] for r in rows}


def _with_statistics(conn: psycopg.Connection) -> list[str]:
    """The queue tables whose status column has statistics this session can see (pg_statistic
    is transactional; pg_class.reltuples is updated in place, at once)."""
    rows = conn.execute(
        "SELECT tablename::text AS name FROM pg_stats WHERE attname = 'status' "
        "AND tablename IN ('procrastinate_jobs', 'llm_outputs') ORDER BY 1"
    ).fetchall()
    return [r["name"] for r in rows]


def test_the_statistics_are_committed_with_the_rows(database_url, pool, analyst):
    # Another session sees the new statistics only once the batch commits (so no worker plans
    # on them before it sees the jobs), and a write rolled back takes its statistics with it.
    with pool.connection() as conn:
        prepared = jobs.prepare_many(
            conn, template="Explain {{concept}}", model="offline/echo", contexts=_rows(BACKLOG)
        )
    both = ["llm_outputs", "procrastinate_jobs"]
    with (
        psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as other,
        pool.connection() as conn,
    ):
        with pytest.raises(RuntimeError), conn.transaction():
            jobs.write_many(conn, prepared, analyst)
            jobs.refresh_queue_statistics(conn, BACKLOG)
            assert _with_statistics(conn) == both
            raise RuntimeError("rolled back")
        assert _with_statistics(other) == []
        with conn.transaction():
            jobs.write_many(conn, prepared, analyst)
            jobs.refresh_queue_statistics(conn, BACKLOG)
            assert _with_statistics(conn) == both
            assert _with_statistics(other) == []
        assert _with_statistics(other) == both


def test_a_locked_table_leaves_its_statistics_to_autovacuum(database_url, pool, analyst):
    # A VACUUM or another ANALYZE holding procrastinate's jobs table: the batch waits at most
    # the lock timeout for it, is queued all the same, and its outputs' statistics are fresh.
    with psycopg.connect(database_url, row_factory=dict_row) as holder:
        holder.execute("LOCK TABLE procrastinate_jobs IN SHARE UPDATE EXCLUSIVE MODE")
        made = batches.submit_batch(
            pool,
            user=analyst,
            template="Explain {{concept}}",
            model="offline/echo",
            rows=_rows(BACKLOG),
        )
        holder.rollback()
    assert made.total == BACKLOG
    with pool.connection() as conn:
        counted = _counted(conn)
        waiting = conn.execute(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'todo'"
        ).fetchone()["n"]
    assert waiting == BACKLOG
    assert counted["llm_outputs"] >= BACKLOG and counted["procrastinate_jobs"] < 0


def _write_without_statistics(pool, analyst, rows: int) -> None:
    """Rows written as a run of single submissions writes them: no ANALYZE follows."""
    with pool.connection() as conn:
        prepared = jobs.prepare_many(
            conn, template="Explain {{concept}}", model="offline/echo", contexts=_rows(rows)
        )
    with pool.connection() as conn, conn.transaction():
        jobs.write_many(conn, prepared, analyst)
        conn.execute("SELECT pg_stat_force_next_flush()")  # the counters, at once


async def test_statistics_follow_a_backlog_grown_without_a_bulk_write(
    database_url, pool, analyst, opened_app
):
    # Statistics taken while the tables were nearly empty, as autovacuum takes them a few
    # minutes after a start; then a backlog grows by single submissions. The workers' upkeep
    # analyzes the tables the backlog outgrew, and the fetch reads what it takes again.
    _write_without_statistics(pool, analyst, 30)
    with pool.connection() as conn:
        conn.execute("ANALYZE procrastinate_jobs")
        conn.execute("ANALYZE llm_outputs")
    with pool.connection() as conn:
        assert max(_counted(conn).values()) < 100
    _write_without_statistics(pool, analyst, BACKLOG)
    async with opened_app.connector.pool.connection() as conn:
        analyzed = await queues_db.analyze_stale_tables(conn)
        again = await queues_db.analyze_stale_tables(conn)
    assert sorted(analyzed) == ["llm_outputs", "procrastinate_jobs"]
    assert again == []  # fresh now: nothing to do until the rows change again
    with pool.connection() as conn:
        assert min(_counted(conn).values()) >= BACKLOG
    _assert_fetch_reads_what_it_takes(database_url)


@pytest.mark.parametrize("rows", [10, 499])
def test_a_small_bulk_leaves_statistics_to_autovacuum(pool, analyst, rows):
    jobs.submit_many(
        pool,
        user=analyst,
        template="Explain {{concept}}",
        model="offline/echo",
        contexts=_rows(rows),
    )
    with pool.connection() as conn:
        assert (
            conn.execute("SELECT reltuples FROM pg_class WHERE relname = 'llm_outputs'").fetchone()[
                "reltuples"
            ]
            < 0
        )


@pytest.mark.parametrize("queues", [None, ["low"]])
def test_the_fetch_leaves_the_session_settings_as_it_found_them(database_url, queues):
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        params = {
            "queues": queues,
            "worker_id": None,
            "count": 1,
            "task": LLM_TASK,
            "minute": 60,
            "stalled": 30,
        }
        conn.execute(queries["fetch_jobs"], params)
        assert conn.execute("SHOW enable_sort").fetchone()["enable_sort"] == "on"
