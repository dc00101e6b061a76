"""/healthz and the OpenAPI document."""

from __future__ import annotations

import uuid

import psycopg
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from api.app import create_app


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "queue": True}


def test_unmigrated_database_is_503(server_url, monkeypatch):
    name = f"llmjobs_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        params = {**conninfo_to_dict(server_url), "dbname": name}
        monkeypatch.setenv("DATABASE_URL", make_conninfo(**params))
        with TestClient(create_app()) as client:
            response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": False, "queue": False}
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_unreachable_database_is_503_not_500(monkeypatch):
    # Nothing listens on port 1: every connection attempt is refused at once.
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    with TestClient(create_app()) as client:
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["database"] is False
        # An API call that needs the database answers 503 too, not 500 (after the pool's
        # wait for a connection, shortened here).
        client.app.state.pool.timeout = 0.5
        token = {"Authorization": "Bearer llmj_x"}
        job = {"template": "Hi", "model": "offline/echo"}
        for method, path, body in [
            ("get", "/api/v1/models", None),
            ("post", "/api/v1/llm_jobs", job),
            ("post", "/api/v1/llm_jobs", {**job, "template": 5}),  # the token is checked first
        ]:
            api = client.request(method, path, headers=token, json=body)
            assert api.status_code == 503, (path, body)
            assert api.json() == {"detail": "the database is unavailable; retry shortly"}


def test_openapi_documents_routes_and_errors(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths) == {
        "/api/v1/llm_jobs",
        "/api/v1/llm_outputs",
        "/api/v1/llm_outputs/{output_id}",
        "/api/v1/llm_outputs/{output_id}/feedback",
        "/api/v1/llm_outputs/{output_id}/re_run",
        "/api/v1/llm_outputs/{output_id}/regenerate",
        "/api/v1/models",
        "/api/v1/comparisons",
        "/api/v1/comparisons/{comparison_id}",
        "/api/v1/comparisons/{comparison_id}/pick",
        "/api/v1/leaderboard",
        "/api/v1/batches",
        "/api/v1/batches/{batch_id}",
        "/api/v1/batches/{batch_id}/cancel",
        "/api/v1/batches/{batch_id}/retry_failed",
        "/api/v1/batches/{batch_id}/results",
        "/api/v1/exports",
        "/api/v1/limits",
        "/api/v1/judges",
        "/api/v1/judges/{judge_id}",
        "/api/v1/judges/{judge_id}/runs",
        "/api/v1/judges/{judge_id}/verdicts",
        "/api/v1/judges/{judge_id}/calibration",
        "/api/v1/feedback_reasons",
        "/api/v1/feedback_reasons/{name}",
        "/api/v1/llm_outputs/{output_id}/feedback_events",
        "/api/v1/review_queues",
        "/api/v1/review_queues/{queue_id}",
        "/api/v1/review_queues/{queue_id}/next",
        "/api/v1/review_queues/{queue_id}/items/{output_id}",
        "/healthz",
    }
    create = paths["/api/v1/llm_jobs"]["post"]
    assert create["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Submission"
    }
    assert set(create["responses"]) >= {"202", "401", "409", "413", "422", "429", "503"}
    assert "Retry-After" in create["responses"]["429"]["headers"]
    assert create["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationErrors"
    }
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])
    assert create["security"] == [{"HTTPBearer": []}]
    assert "security" not in paths["/healthz"]["get"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    listing = paths["/api/v1/llm_outputs"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"status", "limit", "cursor", "user_id"}
