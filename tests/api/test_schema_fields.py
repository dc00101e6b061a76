"""The JSON Schema of batches and comparisons through the HTTP API: a bad one is a 422 naming
json_schema with nothing queued; a good one reaches every output; OpenAPI lists the fields."""

from __future__ import annotations

import csv
import io

import pytest

from api.app import create_app

BATCHES = "/api/v1/batches"
COMPARISONS = "/api/v1/comparisons"
REVIEW = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "score": {"type": "integer"}},
    "required": ["summary", "score"],
}
BATCH = {
    "template": "Review {{plan}}",
    "model": "offline/echo",
    "format": "json",
    "rows": [{"plan": "launch"}, {"plan": "hiring"}],
}
COMPARISON = {
    "template": "Review {{plan}}",
    "context": {"plan": "launch"},
    "models": ["offline/echo", "offline/brief"],
    "format": "json",
}


def _counts(pool) -> tuple[int, int, int]:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM llm_outputs) AS outputs,"
            " (SELECT count(*) FROM batches) AS batches,"
            " (SELECT count(*) FROM comparisons) AS comparisons"
        ).fetchone()
    return row["outputs"], row["batches"], row["comparisons"]


@pytest.mark.parametrize("path, body", [(BATCHES, BATCH), (COMPARISONS, COMPARISON)])
@pytest.mark.parametrize(
    "schema, says",
    [
        ({"type": "nope"}, "'nope' is not valid"),
        ({"$ref": "http://x/s"}, "points outside the schema"),
        ({"type": "object", "patternProperties": {"a": {}}}, "patternProperties"),
    ],
)
def test_a_bad_schema_is_422_naming_json_schema_and_writes_nothing(
    client, ana, pool, path, body, schema, says
):
    response = client.post(path, headers=ana, json={**body, "json_schema": schema})
    assert response.status_code == 422, response.text
    fields = {e["field"]: e["message"] for e in response.json()["detail"]}
    assert list(fields) == ["json_schema"] and says in fields["json_schema"]
    assert _counts(pool) == (0, 0, 0)


@pytest.mark.parametrize("path, body", [(BATCHES, BATCH), (COMPARISONS, COMPARISON)])
def test_a_schema_with_another_format_is_422(client, ana, pool, path, body):
    response = client.post(
        path, headers=ana, json={**body, "format": "text", "json_schema": REVIEW}
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["detail"]] == ["json_schema"]
    assert _counts(pool) == (0, 0, 0)


def test_a_schema_that_is_not_an_object_is_422(client, ana, pool):
    response = client.post(BATCHES, headers=ana, json={**BATCH, "json_schema": ["type"]})
    assert response.status_code == 422, response.text
    assert any("json_schema" in e["field"] for e in response.json()["detail"])
    assert _counts(pool) == (0, 0, 0)


async def test_a_batchs_schema_reaches_its_rows_and_its_csv(client, ana, pool, run_worker):
    created = client.post(BATCHES, headers=ana, json={**BATCH, "json_schema": REVIEW})
    assert created.status_code == 202, created.text
    batch = created.json()
    assert batch["json_schema"] == REVIEW
    with pool.connection() as conn:
        schemas = conn.execute(
            "SELECT json_schema FROM llm_outputs WHERE batch_id = %s", (batch["id"],)
        ).fetchall()
    assert [r["json_schema"] for r in schemas] == [REVIEW, REVIEW]
    await run_worker()
    text = client.get(f"{BATCHES}/{batch['id']}/results", headers=ana).text
    header = next(csv.reader(io.StringIO(text)))
    assert header[-2:] == list(REVIEW["properties"])


def test_a_comparisons_schema_reaches_every_answer(client, ana):
    created = client.post(COMPARISONS, headers=ana, json={**COMPARISON, "json_schema": REVIEW})
    assert created.status_code == 202, created.text
    shown = client.get(f"{COMPARISONS}/{created.json()['comparison_id']}", headers=ana).json()
    assert shown["json_schema"] == REVIEW and len(shown["answers"]) == 2
    for answer in shown["answers"]:
        output = client.get(f"/api/v1/llm_outputs/{answer['output_id']}", headers=ana).json()
        assert (output["format"], output["json_schema"]) == ("json", REVIEW)


def test_openapi_lists_json_schema_on_batches_and_comparisons():
    components = create_app().openapi()["components"]["schemas"]
    for name in ("BatchRequest", "ComparisonRequest", "JobRequest"):
        field = components[name]["properties"]["json_schema"]
        assert "JSON Schema" in field["description"], name
    assert "json_schema" in components["BatchOut"]["properties"]
    assert "json_schema" in components["ComparisonOut"]["properties"]
