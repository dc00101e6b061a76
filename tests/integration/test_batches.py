"""Batches from CSV and JSONL files, dataset exports, and the response cache."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tasks import batches, exports
from tasks import outputs as jobs
from tasks.errors import Conflict, InvalidInput, InvalidRows, NotFound
from tasks.llm import rendering, sandbox
from tasks.testing import create_test_llm_output
from tests.support.provider import error, ok

CSV = b"name,topic\nAda,loops\nBob,sets\n"
COSTLY = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{{a}}"
NUMBERS = b"a\n" + b"".join(b"%d\n" % n for n in range(400))


def test_parse_csv_and_jsonl():
    parsed = batches.parse_file(CSV, "people.csv")
    assert parsed.columns == ["name", "topic"]
    assert parsed.rows == [{"name": "Ada", "topic": "loops"}, {"name": "Bob", "topic": "sets"}]
    jsonl = b'{"name": "Ada", "n": 1}\n\n{"name": "Bob", "extra": [1]}\n'
    parsed = batches.parse_file(jsonl, "rows.jsonl")
    assert parsed.columns == ["name", "n", "extra"] and len(parsed.rows) == 2
    with pytest.raises(InvalidRows) as caught:
        batches.parse_file(b'{"a": 1}\nnot json\n', "rows.jsonl")
    assert caught.value.rows[0][0] == 2 and "line 2 is not JSON" in caught.value.rows[0][2]
    deep = ('{"a":' * 9_999 + '{"a":1' + "}" * 10_000).encode()
    with pytest.raises(InvalidRows) as caught:
        batches.parse_file(b'{"a": 1}\n' + deep + b"\n", "rows.jsonl")
    assert caught.value.rows == [
        (2, "context", "line 2 is nested too deeply (at most 32 levels of objects and lists)")
    ]
    for content, name, fragment in (
        (CSV, "rows.xlsx", ".csv, .jsonl"),
        (b"\xff\xfe", "x.csv", "UTF-8"),
        (b",b\n1,2\n", "x.csv", "header row"),
    ):
        with pytest.raises(InvalidInput, match=fragment):
            batches.parse_file(content, name)


def test_a_csv_header_naming_a_column_twice_is_refused():
    for content, named in (
        (b"a,a\n1,2\n", "column 'a' more than once"),
        (b"a,b,a,b,c\n1,2,3,4,5\n", "columns 'a', 'b' more than once"),
    ):
        with pytest.raises(InvalidInput, match=named) as caught:
            batches.parse_file(content, "x.csv")
        assert caught.value.field == "file"
    with pytest.raises(InvalidInput, match="naming every column"):
        batches.parse_file(b"a,,b\n1,2,3\n", "x.csv")
    assert batches.parse_file(b"a,A\n1,2\n", "x.csv").rows == [{"a": "1", "A": "2"}]


@pytest.mark.parametrize("skip_invalid", [False, True])
def test_a_row_too_expensive_refuses_the_whole_batch_at_once(pool, analyst, renders, skip_invalid):
    parsed = batches.parse_file(NUMBERS, "numbers.csv")
    assert len(parsed.rows) == 400
    with pytest.raises(InvalidRows) as caught:
        batches.submit_batch(
            pool,
            user=analyst,
            template=COSTLY,
            model="offline/echo",
            rows=parsed.rows,
            skip_invalid=skip_invalid,
        )
    [(row, field, message)] = caught.value.rows
    assert (row, field, caught.value.count) == (1, "template", 1)
    assert message.startswith("template too expensive: ")
    assert f"(limit {sandbox.MAX_STEPS})" in message
    assert len(renders) == 1
    assert batches.list_batches(pool, analyst) == []
    with pytest.raises(InvalidRows):
        jobs.submit_many(
            pool, user=analyst, template=COSTLY, model="offline/echo", contexts=[{"a": 1}] * 400
        )
    assert len(renders) == 2
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM llm_outputs").fetchone()["n"] == 0


def test_a_batch_spending_past_the_batch_budget_is_refused(pool, analyst, renders, monkeypatch):
    # each row spends half the per-render budget: every render passes, their sum does not
    monkeypatch.setattr(sandbox, "MAX_BATCH_STEPS", 10 * sandbox.MAX_STEPS)
    template = "{% for i in range(" + str(sandbox.MAX_STEPS // 2) + ") %}{% endfor %}{{a}}"
    assert rendering.render(template, {"a": 1}) == "1"
    renders.clear()
    rows = [{"a": n} for n in range(400)]
    for submit in (
        lambda: batches.submit_batch(
            pool, user=analyst, template=template, model="offline/echo", rows=rows
        ),
        lambda: jobs.submit_many(
            pool, user=analyst, template=template, model="offline/echo", contexts=rows
        ),
    ):
        renders.clear()
        with pytest.raises(InvalidInput) as caught:
            submit()
        assert caught.value.field == "template"
        assert caught.value.message == (
            "template too expensive for a batch of 400 rows: more than 1000000 steps across its"
            " rows (limit 1000000)"
        )
        assert len(renders) == 20  # 20 rows of 50,001 steps pass 1,000,000
    assert batches.list_batches(pool, analyst) == []
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM llm_outputs").fetchone()["n"] == 0


def test_bad_rows_reported_are_capped(pool, analyst):
    rows = [{"other": n} for n in range(400)]
    with pytest.raises(InvalidRows) as caught:
        batches.submit_batch(
            pool, user=analyst, template="Hi {{name}}", model="offline/echo", rows=rows
        )
    assert caught.value.count == 400 and caught.value.unreported == 380
    assert [r[0] for r in caught.value.rows] == list(range(1, 21))
    assert str(caught.value).endswith("(and 399 more rows)")
    assert batches.list_batches(pool, analyst) == []


async def test_batch_runs_and_exports_results(pool, analyst, run_worker):
    parsed = batches.parse_file(CSV, "people.csv")
    batch = batches.submit_batch(
        pool,
        user=analyst,
        template="Teach {{name}} {{topic}}",
        model="offline/echo",
        rows=parsed.rows,
        columns=parsed.columns,
        name="class",
    )
    assert (batch.total, batch.unfinished, batch.completed) == (2, 2, 0)
    await run_worker()
    done = batches.get_batch(pool, batch.id, analyst)
    assert (done.completed, done.failed, done.unfinished) == (2, 0, 0)
    table = list(csv.DictReader(io.StringIO(batches.results(pool, batch.id, analyst, "csv"))))
    assert [(r["row"], r["name"], r["topic"], r["status"]) for r in table] == [
        ("1", "Ada", "loops", "completed"),
        ("2", "Bob", "sets", "completed"),
    ]
    assert table[0]["output"] == "Echo: Teach Ada loops"
    lines = [json.loads(x) for x in batches.results(pool, batch.id, analyst, "jsonl").splitlines()]
    assert [r["output"] for r in lines] == ["Echo: Teach Ada loops", "Echo: Teach Bob sets"]
    assert [b.id for b in batches.list_batches(pool, analyst)] == [batch.id]


def test_bad_rows_reported_by_number_nothing_queued(pool, analyst):
    parsed = batches.parse_file(b"name,x\nAda,1\nBob,2\n,2,3\n", "people.csv")
    rows = [{"name": "Ada"}, {"other": 1}, parsed.rows[2]]
    with pytest.raises(InvalidRows) as caught:
        batches.submit_batch(
            pool, user=analyst, template="Hi {{name}}", model="offline/echo", rows=rows
        )
    assert [r[0] for r in caught.value.rows] == [2, 3]
    assert caught.value.rows[1][1:] == ("row", "line 4: more values than columns")
    assert batches.list_batches(pool, analyst) == []
    skipped = batches.submit_batch(
        pool,
        user=analyst,
        template="Hi {{name}}",
        model="offline/echo",
        rows=rows,
        skip_invalid=True,
    )
    assert skipped.total == 1 and [s[0] for s in skipped.skipped] == [2, 3]


async def test_cancel_then_retry_failed(pool, analyst, other_analyst, run_worker):
    batch = batches.submit_batch(
        pool,
        user=analyst,
        template="Hi {{n}}",
        model="offline/echo",
        rows=[{"n": i} for i in range(50)],
    )
    with pytest.raises(NotFound):
        batches.cancel_batch(pool, batch.id, other_analyst)
    cancelled = batches.cancel_batch(pool, batch.id, analyst)
    assert len(cancelled) == 50
    state = batches.get_batch(pool, batch.id, analyst)
    assert (state.failed, state.cancelled, state.unfinished) == (0, 50, 0)
    assert state.cancelled_at is not None
    await run_worker()  # nothing left to run
    assert batches.get_batch(pool, batch.id, analyst).completed == 0
    again = batches.retry_failed(pool, batch.id, analyst)
    assert len(again) == 50
    await run_worker()
    final = batches.get_batch(pool, batch.id, analyst)
    assert (final.completed, final.failed, final.cancelled, final.cancelled_at) == (50, 0, 0, None)
    with pytest.raises(Conflict):
        batches.retry_failed(pool, batch.id, analyst)


def test_export_golden_and_eval_sets(pool, analyst, other_analyst, admin):
    up = create_test_llm_output(pool, analyst, feedback="thumbs_up", raw_response="good")
    down = create_test_llm_output(pool, analyst, feedback="thumbs_down", raw_response="bad")
    create_test_llm_output(pool, analyst, status="failed")
    theirs = create_test_llm_output(pool, other_analyst, feedback="thumbs_up")
    everything = [json.loads(x) for x in exports.export_jsonl(pool, analyst)]
    assert [r["id"] for r in everything] == [up.id, down.id]  # completed and own only
    golden = [json.loads(x) for x in exports.export_jsonl(pool, analyst, kind="golden")]
    assert [r["id"] for r in golden] == [up.id]
    assert golden[0]["messages"][-1] == {"role": "assistant", "content": "good"}
    assert golden[0]["feedback"] == "thumbs_up" and golden[0]["model"] == "offline/echo"
    evals = [json.loads(x) for x in exports.export_jsonl(pool, analyst, kind="eval")]
    assert [r["id"] for r in evals] == [down.id]
    assert {json.loads(x)["id"] for x in exports.export_jsonl(pool, admin)} == {
        up.id,
        down.id,
        theirs.id,
    }
    with pytest.raises(InvalidInput):
        list(exports.export_jsonl(pool, analyst, kind="best"))


async def test_cache_reuses_answers_and_re_run_bypasses(pool, analyst, provider, run_worker):
    provider.push(ok("first answer"), ok("fresh answer"), ok("uncached answer"))
    first = jobs.submit(
        pool, user=analyst, template="Q {{q}}", context={"q": 1}, model="openai/m", cache=True
    )
    await run_worker()
    hit = jobs.submit(
        pool, user=analyst, template="Q {{q}}", context={"q": 1}, model="openai/m", cache=True
    )
    await run_worker()
    out = jobs.get_output(pool, hit.output_id, analyst)
    assert (out.status, out.parsed_output, out.cache_hit_of) == (
        "completed",
        "first answer",
        first.output_id,
    )
    assert float(out.cost) == 0 and len(provider.requests) == 1  # no model call
    rerun = jobs.re_run(pool, first.output_id, analyst)
    other_format = jobs.submit(
        pool,
        user=analyst,
        template="Q {{q}}",
        context={"q": 1},
        model="openai/m",
        format="markdown",
        cache=True,
    )
    await run_worker()
    assert jobs.get_output(pool, rerun.output_id, analyst).cache_hit_of is None
    assert jobs.get_output(pool, other_format.output_id, analyst).cache_hit_of is None
    assert len(provider.requests) == 3


async def test_cache_off_by_default_and_failed_answers_not_reused(
    pool, analyst, provider, run_worker
):
    provider.push(error(400, "nope"), ok("a"), ok("b"))
    failed = jobs.submit(pool, user=analyst, template="Q", model="openai/m", cache=True)
    await run_worker()
    assert jobs.get_output(pool, failed.output_id, analyst).status == "failed"
    again = jobs.submit(pool, user=analyst, template="Q", model="openai/m", cache=True)
    plain = jobs.submit(pool, user=analyst, template="Q", model="openai/m")
    await run_worker()
    assert jobs.get_output(pool, again.output_id, analyst).cache_hit_of is None
    assert jobs.get_output(pool, plain.output_id, analyst).cache_hit_of is None
    assert len(provider.requests) == 3


@pytest.mark.slow
def test_ten_thousand_row_batch_in_one_transaction_and_cancelled(pool, analyst):
    rows = [{"n": i} for i in range(10_000)]
    batch = batches.submit_batch(
        pool, user=analyst, template="Item {{n}}", model="offline/echo", rows=rows
    )
    assert (batch.total, batch.unfinished) == (10_000, 10_000)
    assert len(batches.cancel_batch(pool, batch.id, analyst)) == 10_000
    with pool.connection() as conn:
        statuses = {
            r["status"]: r["n"]
            for r in conn.execute(
                "SELECT status, count(*) AS n FROM procrastinate_jobs GROUP BY status"
            )
        }
    assert statuses == {"cancelled": 10_000}


async def test_cache_never_crosses_users(pool, analyst, other_analyst, provider, run_worker):
    provider.push(ok("ana's answer"), ok("otto's answer"))
    jobs.submit(pool, user=analyst, template="Q", model="openai/m", cache=True)
    await run_worker()
    theirs = jobs.submit(pool, user=other_analyst, template="Q", model="openai/m", cache=True)
    await run_worker()
    out = jobs.get_output(pool, theirs.output_id, other_analyst)
    assert (out.parsed_output, out.cache_hit_of) == ("otto's answer", None)


async def test_batch_from_a_library_template_records_its_version(pool, analyst, run_worker):
    from tasks import templates

    version = templates.save_template(pool, analyst, "greet", "Hello {{name}}")
    batch = batches.submit_batch(
        pool,
        user=analyst,
        template=None,
        template_name="greet",
        model="offline/echo",
        rows=[{"name": "Ada"}],
    )
    await run_worker()
    [result] = list(batches.iter_results(pool, batch.id, analyst))
    out = jobs.get_output(pool, result.id, analyst)
    assert (out.template_version_id, out.parsed_output) == (version.id, "Echo: Hello Ada")
