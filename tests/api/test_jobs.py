"""POST /api/v1/llm_jobs: what it queues, what it answers, and how it refuses bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks import agents
from tests.api.conftest import EXAMPLE_JOB

JOBS = "/api/v1/llm_jobs"


def errors_of(response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {e["field"]: e["message"] for e in response.json()["detail"]}


async def test_example_job_is_queued_then_completed(client, ana, analyst, queued_jobs, run_worker):
    before = datetime.now(UTC)
    response = client.post(JOBS, headers=ana, json=EXAMPLE_JOB)

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"job_id", "output_id", "status", "estimated_completion"}
    assert body["status"] == "queued"
    assert datetime.fromisoformat(body["estimated_completion"]) >= before
    [job] = queued_jobs()
    assert (job["job_id"], job["output_id"]) == (body["job_id"], body["output_id"])
    assert (job["template"], job["model"], job["format"]) == (
        EXAMPLE_JOB["template"],
        "offline/echo",
        "markdown",
    )
    assert job["context"] == {"concept": "recursion"} and job["queue_name"] == "default"

    await run_worker()
    output = client.get(f"/api/v1/llm_outputs/{body['output_id']}", headers=ana).json()
    assert output["status"] == "completed"
    assert output["user_id"] == analyst.id
    assert output["prompt"] == "Explain recursion to a beginner"
    assert output["parsed_output"].startswith("## Answer")


def test_queue_and_agent_are_applied(client, ana, analyst, pool, queued_jobs):
    agent = agents.create_agent(
        pool,
        analyst,
        name="tutor",
        default_model="offline/echo",
        default_format="json",
        system_prompt="Be brief.",
    )
    body = {
        "template": "Hi {{name}}",
        "context": {"name": "Ada"},
        "queue": "high",
        "agent_id": agent.id,
    }

    response = client.post(JOBS, headers=ana, json=body)

    assert response.status_code == 202, response.text
    [job] = queued_jobs()
    assert job["queue_name"] == "high" and job["format"] == "json"
    output = client.get(f"/api/v1/llm_outputs/{job['output_id']}", headers=ana).json()
    assert output["agent_id"] == agent.id and output["system_prompt"] == "Be brief."


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"context": {}}, "context", "concept"),
        ({"context": {"other": 1}}, "context", "missing variables: concept"),
        ({"format": "pdf"}, "format", "'markdown'"),
        ({"model": "offline/nonexistent"}, "model", "unknown offline model"),
        ({"model": "no-such-provider/x"}, "model", "no-such-provider/x"),
        ({"queue": "urgent"}, "queue", "'high'"),
        ({"template": ""}, "template", "empty"),
        ({"template": "{% if %}"}, "template", "syntax error"),
        ({"template": "a\x00b"}, "template", "NUL"),
        ({"context": {"concept": "a\x00"}}, "context", "NUL"),
        ({"context": ["recursion"]}, "context", "dictionary"),
        ({"agent_id": 10**30}, "agent_id", "less than or equal"),
        ({"agent_id": 999}, "agent", "no agent 999"),
        ({"model": 42}, "model", "string"),
        ({"priority": 1}, "priority", "Extra inputs"),
    ],
)
def test_invalid_input_names_field_and_reason(client, ana, queued_jobs, change, field, words):
    response = client.post(JOBS, headers=ana, json={**EXAMPLE_JOB, **change})

    errors = errors_of(response)
    assert field in errors, errors
    assert words in errors[field]
    assert queued_jobs() == []


def test_missing_template_is_named(client, ana):
    body = {k: v for k, v in EXAMPLE_JOB.items() if k != "template"}
    assert errors_of(client.post(JOBS, headers=ana, json=body)) == {
        "template": "is required (or give a template_name)"
    }


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"template": ', "is not valid JSON"),
        (b'{"template": "\xff\xfe"}', "UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b'"just a string"', "valid dictionary"),
        (b'{"template": "\\ud800 {{concept}}", "model": "offline/echo"}', "Unicode"),
        (b'{"template": "{{n}}", "context": {"n": 1e400}, "model": "offline/echo"}', "JSON"),
        (b"", "required"),
    ],
)
def test_malformed_bodies_are_422_not_500(client, ana, raw, words):
    headers = {**ana, "Content-Type": "application/json"}
    response = client.post(JOBS, headers=headers, content=raw)

    errors = errors_of(response)
    assert any(words in message for message in errors.values()), errors


def test_body_over_256_kib_is_413(client, ana, queued_jobs):
    big = {**EXAMPLE_JOB, "context": {"concept": "x" * (256 * 1024)}}
    response = client.post(JOBS, headers=ana, json=big)
    assert response.status_code == 413
    assert "256 KiB" in response.json()["detail"]

    # Without Content-Length (chunked), the bytes received are counted.
    def chunks():
        yield b'{"template": "'
        for _ in range(300):
            yield b"y" * 1024
        yield b'"}'

    headers = {**ana, "Content-Type": "application/json"}
    response = client.post(JOBS, headers=headers, content=chunks())
    assert response.status_code == 413
    assert queued_jobs() == []


def test_body_just_under_the_limit_is_read(client, ana):
    # 200 KiB of context passes the transport and is refused by the 64 KiB context rule instead.
    body = {**EXAMPLE_JOB, "context": {"concept": "x" * (200 * 1024)}}
    errors = errors_of(client.post(JOBS, headers=ana, json=body))
    assert "64 KiB" in errors["context"]
