"""Batches, dataset exports and the response cache through the HTTP API."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tasks.testing import create_test_llm_output
from tests.api.conftest import EXAMPLE_JOB
from tests.support.hostile import FORMULAS, NUMBER_AS_TEXT, echo, neutralised

BATCHES = "/api/v1/batches"
MIB = 1024 * 1024


def _batch(**source):
    return {"template": "Explain {{concept}}", "model": "offline/echo", **source}


def _rows_in_db(pool, batch_id):
    with pool.connection() as conn:
        return conn.execute(
            "SELECT id, batch_row, status, parsed_output, context FROM llm_outputs"
            " WHERE batch_id = %s ORDER BY batch_row",
            (batch_id,),
        ).fetchall()


async def test_batch_from_rows_runs_and_gives_results(
    client, ana, otto, root, pool, run_worker, queued_jobs
):
    rows = [{"concept": "loops", "level": 1}, {"concept": "sets"}]
    created = client.post(BATCHES, headers=ana, json=_batch(rows=rows, name="glossary"))
    assert created.status_code == 202, created.text
    batch = created.json()
    assert (batch["name"], batch["columns"], batch["skipped"]) == (
        "glossary",
        ["concept", "level"],
        [],
    )
    assert (batch["total"], batch["unfinished"], batch["completed"]) == (2, 2, 0)
    assert [j["context"] for j in queued_jobs()] == rows

    await run_worker()
    progress = client.get(f"{BATCHES}/{batch['id']}", headers=ana).json()
    assert {k: progress[k] for k in ("total", "completed", "failed", "unfinished")} == {
        "total": 2,
        "completed": 2,
        "failed": 0,
        "unfinished": 0,
    }
    assert progress["cancelled_at"] is None and progress["cost"] >= 0

    stored = _rows_in_db(pool, batch["id"])
    as_csv = client.get(f"{BATCHES}/{batch['id']}/results", headers=ana)
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["content-disposition"] == (
        f'attachment; filename="batch-{batch["id"]}.csv"'
    )
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(int(r["row"]), int(r["output_id"]), r["status"], r["output"]) for r in table] == [
        (s["batch_row"], s["id"], s["status"], s["parsed_output"]) for s in stored
    ]
    assert [(r["concept"], r["level"]) for r in table] == [("loops", "1"), ("sets", "")]

    as_jsonl = client.get(f"{BATCHES}/{batch['id']}/results?format=jsonl", headers=ana)
    assert as_jsonl.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert [(r["row"], r["output_id"], r["output"], r["cached"]) for r in lines] == [
        (s["batch_row"], s["id"], s["parsed_output"], False) for s in stored
    ]
    assert client.get(f"{BATCHES}/{batch['id']}/results?format=xlsx", headers=ana).status_code == (
        422
    )

    output = client.get(f"/api/v1/llm_outputs/{stored[1]['id']}", headers=ana).json()
    assert (output["batch_id"], output["batch_row"]) == (batch["id"], 2)
    assert [b["id"] for b in client.get(BATCHES, headers=ana).json()] == [batch["id"]]
    assert client.get(BATCHES, headers=otto).json() == []
    assert [b["id"] for b in client.get(BATCHES, headers=root).json()] == [batch["id"]]


@pytest.mark.parametrize(
    ("source", "text", "columns", "contexts"),
    [
        (
            "csv",
            "concept,level\nloops,1\nsets,2\n",
            ["concept", "level"],
            [{"concept": "loops", "level": "1"}, {"concept": "sets", "level": "2"}],
        ),
        (
            "jsonl",
            '{"concept": "loops", "level": 1}\n\n{"concept": "sets", "tags": ["a"]}\n',
            ["concept", "level", "tags"],
            [{"concept": "loops", "level": 1}, {"concept": "sets", "tags": ["a"]}],
        ),
    ],
)
def test_batch_from_csv_or_jsonl_text(client, ana, queued_jobs, source, text, columns, contexts):
    created = client.post(BATCHES, headers=ana, json=_batch(**{source: text}))
    assert created.status_code == 202, created.text
    assert created.json()["columns"] == columns and created.json()["total"] == 2
    assert [j["context"] for j in queued_jobs()] == contexts


def test_an_empty_batch_names_its_rows(client, ana, queued_jobs):
    refused = client.post(BATCHES, headers=ana, json=_batch(rows=[]))
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["detail"]] == ["rows"]
    assert queued_jobs() == []


def test_a_batch_waits_in_the_low_queue_unless_told(client, ana, queued_jobs):
    # as from the CLI and the dashboard: a batch does not hold up single jobs by default
    assert (
        client.post(BATCHES, headers=ana, json=_batch(rows=[{"concept": "a"}])).status_code == 202
    )
    told = _batch(rows=[{"concept": "b"}])
    assert client.post(BATCHES, headers=ana, json={**told, "queue": "high"}).status_code == 202
    assert [(j["context"], j["queue_name"]) for j in queued_jobs()] == [
        ({"concept": "a"}, "low"),
        ({"concept": "b"}, "high"),
    ]


def test_bad_rows_are_reported_by_number_and_nothing_is_queued(client, ana, queued_jobs):
    rows = [{"concept": "loops"}, {"other": 1}, 5, {"concept": "sets"}]
    refused = client.post(BATCHES, headers=ana, json=_batch(rows=rows))
    assert refused.status_code == 422
    assert refused.json() == {
        "detail": [
            {"field": "rows[2].context", "message": "missing variables: concept"},
            {"field": "rows[3].context", "message": "must be a JSON object"},
        ]
    }
    assert queued_jobs() == [] and client.get(BATCHES, headers=ana).json() == []

    bad_line = client.post(BATCHES, headers=ana, json=_batch(jsonl='{"concept": 1}\n{oops\n'))
    [error] = bad_line.json()["detail"]
    assert error["field"] == "rows[2].context" and "line 2 is not JSON" in error["message"]
    no_header = client.post(BATCHES, headers=ana, json=_batch(csv=",b\n1,2\n"))
    assert [e["field"] for e in no_header.json()["detail"]] == ["csv"]
    for sources in ({}, {"rows": [{"concept": "x"}], "csv": "concept\nx\n"}):
        answer = client.post(BATCHES, headers=ana, json=_batch(**sources))
        assert answer.json()["detail"] == [
            {"field": "rows", "message": "give exactly one of rows, csv, jsonl"}
        ]
    assert queued_jobs() == []


def test_skip_invalid_queues_the_good_rows(client, ana, queued_jobs):
    rows = [{"concept": "loops"}, {"other": 1}, 5, {"concept": "sets"}]
    created = client.post(BATCHES, headers=ana, json=_batch(rows=rows, skip_invalid=True))
    assert created.status_code == 202, created.text
    batch = created.json()
    assert batch["total"] == 2
    assert batch["skipped"] == [
        {"row": 2, "field": "context", "message": "missing variables: concept"},
        {"row": 3, "field": "context", "message": "must be a JSON object"},
    ]
    assert [j["context"] for j in queued_jobs()] == [{"concept": "loops"}, {"concept": "sets"}]


async def test_cancel_then_retry_failed(client, ana, otto, run_worker):
    rows = [{"concept": f"c{i}"} for i in range(20)]
    batch_id = client.post(BATCHES, headers=ana, json=_batch(rows=rows)).json()["id"]
    assert client.post(f"{BATCHES}/{batch_id}/cancel", headers=otto).status_code == 404
    cancelled = client.post(f"{BATCHES}/{batch_id}/cancel", headers=ana)
    assert cancelled.status_code == 200 and cancelled.json() == {"cancelled": 20}
    state = client.get(f"{BATCHES}/{batch_id}", headers=ana).json()
    assert (state["failed"], state["cancelled"], state["unfinished"]) == (0, 20, 0)
    assert state["cancelled_at"]

    assert client.post(f"{BATCHES}/{batch_id}/retry_failed", headers=otto).status_code == 404
    headers = {**ana, "Idempotency-Key": "retry-1"}
    retried = client.post(f"{BATCHES}/{batch_id}/retry_failed", headers=headers)
    assert retried.status_code == 202 and retried.json() == {"queued": 20}
    replayed = client.post(f"{BATCHES}/{batch_id}/retry_failed", headers=headers)
    assert replayed.json() == {"queued": 20} and replayed.headers["Idempotent-Replayed"] == "true"
    await run_worker()
    final = client.get(f"{BATCHES}/{batch_id}", headers=ana).json()
    assert (final["completed"], final["failed"], final["cancelled_at"]) == (20, 0, None)
    nothing = client.post(f"{BATCHES}/{batch_id}/retry_failed", headers=ana)
    assert nothing.status_code == 409 and "no failed or cancelled rows" in nothing.json()["detail"]


def test_another_users_batch_is_404(client, ana, otto, root):
    batch_id = client.post(BATCHES, headers=ana, json=_batch(rows=[{"concept": "x"}])).json()["id"]
    for path in (f"{BATCHES}/{batch_id}", f"{BATCHES}/{batch_id}/results"):
        answer = client.get(path, headers=otto)
        assert answer.status_code == 404 and answer.json() == {
            "detail": f"batch {batch_id} not found"
        }
        assert client.get(path, headers=root).status_code == 200
    assert client.get(f"{BATCHES}/{batch_id + 1}", headers=ana).status_code == 404


def test_batch_idempotency_replays_the_batch(client, ana, queued_jobs):
    headers = {**ana, "Idempotency-Key": "upload-7"}
    body = _batch(csv="concept\nloops\nsets\n")
    first = client.post(BATCHES, headers=headers, json=body)
    again = client.post(BATCHES, headers=headers, json=body)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(queued_jobs()) == 2


def test_batch_bodies_may_reach_20_mib(client, ana, queued_jobs):
    # Six rows of 50 KiB each: over the 256 KiB of other routes, within each row's 64 KiB.
    rows = [{"concept": f"{i}" + "x" * (50 * 1024)} for i in range(6)]
    body = json.dumps(_batch(rows=rows)).encode()
    assert len(body) > 256 * 1024
    headers = {**ana, "Content-Type": "application/json"}
    accepted = client.post(BATCHES, headers=headers, content=body)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["total"] == 6

    # Refused on the declared length alone: nothing of the body is read.
    too_large = client.post(BATCHES, headers=headers, content=b" " * (20 * MIB + 1))
    assert too_large.status_code == 413
    assert too_large.json() == {"detail": "request body larger than 20 MiB"}

    def chunks():  # no Content-Length: the bytes received are counted
        block = b" " * MIB
        for _ in range(21):
            yield block

    assert client.post(BATCHES, headers=headers, content=chunks()).status_code == 413

    # Every other route keeps 256 KiB, the batch's own sub-routes included.
    big_job = client.post("/api/v1/llm_jobs", headers=headers, content=body)
    assert big_job.status_code == 413
    assert big_job.json() == {"detail": "request body larger than 256 KiB"}
    batch_id = accepted.json()["id"]
    assert client.post(
        f"{BATCHES}/{batch_id}/cancel", headers=headers, content=body
    ).status_code == (413)
    assert len(queued_jobs()) == 6


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line)["id"] for line in response.text.splitlines()]


def test_exports_golden_eval_and_all(client, ana, root, pool, analyst, other_analyst):
    up = create_test_llm_output(pool, analyst, feedback="thumbs_up", raw_response="good")
    down = create_test_llm_output(pool, analyst, feedback="thumbs_down", raw_response="bad")
    plain = create_test_llm_output(pool, analyst, model="offline/other")
    create_test_llm_output(pool, analyst, status="failed")
    theirs = create_test_llm_output(pool, other_analyst, feedback="thumbs_up")

    everything = client.get("/api/v1/exports", headers=ana)
    assert _ids(everything) == [up.id, down.id, plain.id]  # completed and own only
    assert everything.headers["content-disposition"] == 'attachment; filename="all.jsonl"'
    golden = client.get("/api/v1/exports?kind=golden", headers=ana)
    assert _ids(golden) == [up.id]
    [record] = [json.loads(line) for line in golden.text.splitlines()]
    assert record["messages"][-1] == {"role": "assistant", "content": "good"}
    assert (record["output"], record["feedback"]) == ("good", "thumbs_up")
    assert _ids(client.get("/api/v1/exports?kind=eval", headers=ana)) == [down.id]
    assert _ids(client.get("/api/v1/exports?model=offline/other", headers=ana)) == [plain.id]
    # user_id is for admins: an analyst still gets their own.
    assert _ids(client.get(f"/api/v1/exports?user_id={other_analyst.id}", headers=ana)) == [
        up.id,
        down.id,
        plain.id,
    ]
    assert _ids(client.get("/api/v1/exports?kind=golden", headers=root)) == [up.id, theirs.id]
    only_otto = client.get(f"/api/v1/exports?user_id={other_analyst.id}", headers=root)
    assert _ids(only_otto) == [theirs.id]
    assert _ids(client.get("/api/v1/exports?created_after=2999-01-01T00:00:00Z", headers=ana)) == []
    unknown = client.get("/api/v1/exports?kind=best", headers=ana)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "kind"


async def test_cache_flag_reuses_an_identical_answer(client, ana, run_worker):
    cached_job = {**EXAMPLE_JOB, "cache": True}
    first = client.post("/api/v1/llm_jobs", headers=ana, json=cached_job).json()["output_id"]
    await run_worker()
    second = client.post("/api/v1/llm_jobs", headers=ana, json=cached_job).json()["output_id"]
    uncached = client.post("/api/v1/llm_jobs", headers=ana, json=EXAMPLE_JOB).json()["output_id"]
    await run_worker()

    def output(output_id):
        return client.get(f"/api/v1/llm_outputs/{output_id}", headers=ana).json()

    assert output(first)["cache_hit_of"] is None
    hit = output(second)
    assert (hit["status"], hit["cache_hit_of"]) == ("completed", first)
    assert hit["parsed_output"] == output(first)["parsed_output"]
    assert output(uncached)["cache_hit_of"] is None  # LLMJOBS_CACHE is off by default


def test_405_names_every_method_of_the_path(client, ana):
    # GET and POST /batches are two routes; the answer names both.
    refused = client.request("DELETE", BATCHES, headers=ana)
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, POST"


async def test_batch_results_csv_keeps_formulas_as_text(client, ana, provider, run_worker):
    provider.default = echo  # each answer repeats its row's value
    values = [*FORMULAS, NUMBER_AS_TEXT]
    rows = [{"value": value, "@note": "=x", "delta": -0.5} for value in values]
    created = client.post(
        BATCHES, headers=ana, json={"template": "{{value}}", "model": "openai/m", "rows": rows}
    )
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]
    await run_worker()

    as_csv = client.get(f"{BATCHES}/{batch_id}/results", headers=ana)
    header, *cells = csv.reader(io.StringIO(as_csv.text))
    assert header[:4] == ["row", "value", "'@note", "delta"]
    table = [dict(zip(header, row, strict=True)) for row in cells]
    written = [*map(neutralised, FORMULAS), NUMBER_AS_TEXT]
    assert [(r["value"], r["output"], r["'@note"], r["delta"]) for r in table] == [
        (cell, cell, "'=x", "-0.5") for cell in written
    ]
    as_jsonl = client.get(f"{BATCHES}/{batch_id}/results?format=jsonl", headers=ana)
    lines = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert [(r["value"], r["output"], r["@note"], r["delta"]) for r in lines] == [
        (value, value, "=x", -0.5) for value in values
    ]
