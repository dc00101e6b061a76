"""Bulk submission: every row validated first, then all outputs and jobs in one transaction."""

from __future__ import annotations

import pytest

from tasks import outputs as jobs
from tasks.errors import InvalidInput, InvalidRows


def _counts(pool) -> tuple[int, int, int]:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM llm_outputs) AS outputs, "
            "(SELECT count(*) FROM procrastinate_jobs) AS jobs, "
            "(SELECT count(*) FROM llm_outputs o JOIN procrastinate_jobs j ON j.id = o.job_id "
            " AND (j.args->>'output_id')::bigint = o.id) AS linked"
        ).fetchone()
    return row["outputs"], row["jobs"], row["linked"]


def test_ten_thousand_rows_in_one_transaction(pool, analyst):
    contexts = [{"n": i} for i in range(10_000)]
    result = jobs.submit_many(
        pool,
        user=analyst,
        template="item {{n}}",
        model="offline/echo",
        contexts=contexts,
        queue="low",
    )
    assert len(result.output_ids) == len(result.job_ids) == 10_000
    assert _counts(pool) == (10_000, 10_000, 10_000)
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT id, context, queue, priority FROM llm_outputs WHERE id = ANY(%s) ORDER BY id",
            ([result.output_ids[0], result.output_ids[-1]],),
        ).fetchall()
    # outputs follow the order of the contexts
    assert [r["context"] for r in rows] == [{"n": 0}, {"n": 9999}]
    assert {(r["queue"], r["priority"]) for r in rows} == {("low", 0)}


def test_bad_rows_are_reported_by_number_and_nothing_is_queued(pool, analyst):
    contexts = [{"n": 1}, {}, {"n": 3}, "not an object", {"n": "x" * 70_000}]
    with pytest.raises(InvalidRows) as caught:
        jobs.submit_many(
            pool, user=analyst, template="item {{n}}", model="offline/echo", contexts=contexts
        )
    assert [(row, field) for row, field, _ in caught.value.rows] == [
        (2, "context"),
        (4, "context"),
        (5, "context"),
    ]
    assert "missing variables: n" in caught.value.rows[0][2]
    assert _counts(pool) == (0, 0, 0)


def test_skip_invalid_queues_the_good_rows(pool, analyst):
    result = jobs.submit_many(
        pool,
        user=analyst,
        template="item {{n}}",
        model="offline/echo",
        contexts=[{"n": 1}, {}, {"n": 3}],
        skip_invalid=True,
    )
    assert len(result.output_ids) == 2 and [r for r, _, _ in result.skipped] == [2]
    assert _counts(pool) == (2, 2, 2)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model": "gpt-4o"}, "model"),
        ({"format": "pdf"}, "format"),
        ({"contexts": []}, "contexts"),
        ({"template": "{{ n"}, "template"),
    ],
)
def test_shared_problems_refuse_the_whole_batch(pool, analyst, overrides, field):
    params = {
        "template": "item {{n}}",
        "model": "offline/echo",
        "contexts": [{"n": 1}],
        **overrides,
    }
    with pytest.raises(InvalidInput) as caught:
        jobs.submit_many(pool, user=analyst, **params)
    assert caught.value.field == field
    assert _counts(pool) == (0, 0, 0)


async def test_bulk_jobs_run(pool, analyst, run_worker):
    result = jobs.submit_many(
        pool,
        user=analyst,
        template="item {{n}}",
        model="offline/echo",
        contexts=[{"n": i} for i in range(20)],
    )
    await run_worker()
    outs = [jobs.get_output(pool, i, analyst) for i in result.output_ids]
    assert [o.parsed_output for o in outs] == [f"Echo: item {i}" for i in range(20)]
