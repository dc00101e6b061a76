"""Who may call what: bearer tokens on every /api route, outputs visible to their owner and to
admins only, and an access log line per request that never holds the token."""

from __future__ import annotations

import pytest

from tasks import accounts
from tasks.testing import create_test_llm_output
from tests.api.conftest import EXAMPLE_JOB, bearer

ENDPOINTS = [
    ("post", "/api/v1/llm_jobs", EXAMPLE_JOB),
    ("get", "/api/v1/llm_outputs", None),
    ("get", "/api/v1/llm_outputs/1", None),
    ("post", "/api/v1/llm_outputs/1/feedback", {"feedback": "thumbs_up"}),
    ("post", "/api/v1/llm_outputs/1/re_run", None),
    ("post", "/api/v1/llm_outputs/1/regenerate", {}),
    ("get", "/api/v1/models", None),
]


@pytest.fixture
def revoked(pool, analyst) -> dict[str, str]:
    token = accounts.create_token(pool, analyst.name, "old")
    [listed] = [t for t in accounts.list_tokens(pool, analyst.name) if t.name == "old"]
    accounts.revoke_token(pool, listed.id)
    return bearer(token)


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_every_api_route_needs_a_live_token(client, ana, revoked, queued_jobs, method, path, body):
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer llmj_not-a-real-token"},
        {"Authorization": f"Basic {ana['Authorization'].split()[1]}"},
        {"Authorization": "Bearer " + "x" * 5000},
        revoked,
    ):
        response = client.request(method, path, headers=headers, json=body)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json() == {"detail": "missing, unknown or revoked bearer token"}
    assert queued_jobs() == []


def test_a_live_token_is_accepted(client, ana):
    assert client.get("/api/v1/models", headers=ana).status_code == 200


def test_others_outputs_are_404_and_admins_see_all(
    client, ana, otto, root, pool, analyst, other_analyst, queued_jobs
):
    mine = create_test_llm_output(pool, analyst)
    theirs = create_test_llm_output(pool, other_analyst)
    base = "/api/v1/llm_outputs"

    for method, suffix, body in [
        ("get", "", None),
        ("post", "/feedback", {"feedback": "thumbs_up"}),
        ("post", "/re_run", None),
        ("post", "/regenerate", {}),
    ]:
        response = client.request(method, f"{base}/{theirs.id}{suffix}", headers=ana, json=body)
        assert response.status_code == 404, (suffix, response.text)
        assert response.json() == {"detail": f"output {theirs.id} not found"}
    assert queued_jobs() == []
    assert client.get(f"{base}/{theirs.id}", headers=otto).status_code == 200

    listed = client.get(base, headers=ana).json()["items"]
    assert [o["id"] for o in listed] == [mine.id]
    # An analyst's user filter cannot widen the view.
    listed = client.get(base, headers=ana, params={"user_id": other_analyst.id}).json()["items"]
    assert [o["id"] for o in listed] == [mine.id]

    assert client.get(f"{base}/{theirs.id}", headers=root).json()["user_id"] == other_analyst.id
    everyone = client.get(base, headers=root).json()["items"]
    assert [o["id"] for o in everyone] == [theirs.id, mine.id]
    one_user = client.get(base, headers=root, params={"user_id": analyst.id}).json()["items"]
    assert [o["id"] for o in one_user] == [mine.id]
    judged = client.post(
        f"{base}/{theirs.id}/feedback", headers=root, json={"feedback": "thumbs_up"}
    )
    assert judged.status_code == 200


def test_healthz_and_docs_need_no_token(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_each_request_is_logged_without_the_token(client, ana, analyst, log_lines):
    token = ana["Authorization"].split()[1]
    client.post("/api/v1/llm_jobs", headers=ana, json=EXAMPLE_JOB)
    client.get("/api/v1/llm_outputs", headers={"Authorization": f"Bearer {token}x"})
    client.get("/healthz?probe=1")

    lines = log_lines()
    requests = [line for line in lines if line["message"] == "request"]
    assert [(r["method"], r["path"], r["status"], r["user_id"]) for r in requests] == [
        ("POST", "/api/v1/llm_jobs", 202, analyst.id),
        ("GET", "/api/v1/llm_outputs", 401, None),
        ("GET", "/healthz", 200, None),
    ]
    assert all(isinstance(r["duration_ms"], float) and r["duration_ms"] >= 0 for r in requests)
    assert token not in "\n".join(map(str, lines))
    assert "probe" not in "\n".join(map(str, requests))


BATCH = {"template": "Explain {{concept}}", "model": "offline/echo"}
# Requests refused before their route runs: a bad token must still be the answer.
REFUSED_EARLY = {
    "invalid body": ("/api/v1/llm_jobs", {**EXAMPLE_JOB, "template": 5}, {}),
    "invalid header": ("/api/v1/llm_jobs", EXAMPLE_JOB, {"Idempotency-Key": "has space"}),
    "invalid path": ("/api/v1/llm_outputs/0/re_run", None, {}),
    "two row sources": ("/api/v1/batches", {**BATCH, "rows": [{}], "csv": "concept\nx\n"}, {}),
    "bad rows": ("/api/v1/batches", {**BATCH, "jsonl": '{"concept": 1}\n{oops\n'}, {}),
}


@pytest.mark.parametrize(("path", "body", "headers"), REFUSED_EARLY.values(), ids=REFUSED_EARLY)
def test_a_bad_token_is_401_whatever_else_is_wrong(
    client, ana, analyst, revoked, queued_jobs, log_lines, path, body, headers
):
    for bad in ({"Authorization": "Bearer llmj_not-a-real-token"}, revoked):
        response = client.post(path, headers={**bad, **headers}, json=body)
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == "Bearer"
    # With a live token the same request is refused for what is wrong with it, as its user's.
    assert client.post(path, headers={**ana, **headers}, json=body).status_code == 422
    requests = [line for line in log_lines() if line["message"] == "request"]
    assert [(r["status"], r["user_id"]) for r in requests] == [
        (401, None),
        (401, None),
        (422, analyst.id),
    ]
    assert queued_jobs() == []


def test_a_refused_job_still_counts_as_the_tokens_use(client, pool, analyst):
    token = accounts.create_token(pool, analyst.name, "fresh")

    def last_use():
        [listed] = [t for t in accounts.list_tokens(pool, analyst.name) if t.name == "fresh"]
        return listed.last_used_at

    assert last_use() is None
    refused = client.post(
        "/api/v1/llm_jobs", headers=bearer(token), json={**EXAMPLE_JOB, "model": "offline/none"}
    )
    assert refused.status_code == 422
    assert last_use() is not None
