"""GET /api/v1/models: the offline models and those a live worker published."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from db import catalog as catalog_db
from db.catalog import CatalogModel
from tasks.llm.catalog import OFFLINE_NAMES


def test_lists_the_models_live_workers_serve(database_url, client, ana):
    assert [m["name"] for m in client.get("/api/v1/models", headers=ana).json()] == list(
        OFFLINE_NAMES
    )
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        catalog_db.publish_sync(
            conn,
            "w1",
            "host-a",
            [
                CatalogModel(
                    model="anthropic/claude-3-5-haiku-latest", provider="anthropic", listed=True
                ),
                CatalogModel(model="anthropic/*", provider="anthropic", listed=False),
            ],
        )
    listed = client.get("/api/v1/models", headers=ana).json()
    assert listed[-1] == {
        "name": "anthropic/claude-3-5-haiku-latest",
        "provider": "anthropic",
        "offline": False,
    }
    assert len(listed) == len(OFFLINE_NAMES) + 1
    refused = client.post(
        "/api/v1/llm_jobs",
        headers=ana,
        json={"template": "Hi {{x}}", "context": {"x": "y"}, "model": "openai/gpt-4o"},
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["field"] == "model"
    assert "no worker serves 'openai/gpt-4o'" in refused.json()["detail"][0]["message"]
    accepted = client.post(
        "/api/v1/llm_jobs",
        headers=ana,
        json={"template": "Hi {{x}}", "context": {"x": "y"}, "model": "anthropic/claude-3-opus"},
    )
    assert accepted.status_code == 202, accepted.text
