"""A JSON Schema through the HTTP API: taken on POST /api/v1/llm_jobs, refused with a 422 naming
json_schema (nothing queued), shown on the output, described by the OpenAPI document."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import EXAMPLE_JOB

JOBS = "/api/v1/llm_jobs"
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "score": {"type": "integer", "maximum": 5}},
    "required": ["answer"],
}


def _deep(levels: int) -> dict:
    schema: dict = {}
    for _ in range(levels):
        schema = {"items": schema}
    return schema


def test_a_job_with_a_schema_is_queued_and_shown(client, ana, queued_jobs):
    answer = client.post(
        JOBS, headers=ana, json={**EXAMPLE_JOB, "format": "json", "json_schema": SCHEMA}
    )
    assert answer.status_code == 202, answer.text
    [job] = queued_jobs()
    shown = client.get(f"/api/v1/llm_outputs/{job['output_id']}", headers=ana).json()
    assert shown["json_schema"] == SCHEMA
    assert (shown["schema_valid"], shown["schema_first_try"]) == (None, None)


@pytest.mark.parametrize(
    ("fmt", "schema", "says"),
    [
        ("markdown", SCHEMA, "only a json output takes a JSON Schema"),
        ("json", {"type": 12}, "$.type: 12 is not valid"),
        ("json", {"$ref": "file:///etc/passwd"}, "points outside the schema"),
        ("json", {"pattern": "(?<=a)b"}, "is not supported"),
        ("json", _deep(40), "nested"),
        ("json", [1, 2], "dictionary"),
        ("json", {"const": "a\u0000b"}, "NUL"),
        ("json", {"type": "number", "maximum": float("inf")}, "a number JSON cannot carry"),
        ("json", {"type": "number", "minimum": float("nan")}, "a number JSON cannot carry"),
    ],
)
def test_a_bad_schema_is_a_422_naming_the_field_and_nothing_is_queued(
    client, ana, queued_jobs, fmt, schema, says
):
    # sent as Python's json writes it: NaN and Infinity included, as some clients send them
    answer = client.post(
        JOBS,
        headers={**ana, "Content-Type": "application/json"},
        content=json.dumps({**EXAMPLE_JOB, "format": fmt, "json_schema": schema}),
    )
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["field"] == "json_schema"
    assert says in problem["message"] or says in answer.text
    assert queued_jobs() == []


def test_the_openapi_document_describes_the_schema_field(client):
    document = client.get("/openapi.json").json()
    request = document["components"]["schemas"]["JobRequest"]["properties"]["json_schema"]
    assert "JSON Schema" in request["description"]
    output = document["components"]["schemas"]["Output"]["properties"]
    assert {"json_schema", "schema_valid", "schema_first_try"} <= set(output)
