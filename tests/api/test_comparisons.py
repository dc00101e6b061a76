"""Comparisons and the leaderboard through the HTTP API."""

from __future__ import annotations

import json

from tasks.outputs import BLIND_MODEL
from tasks.testing import stub_model_success

COMPARISONS = "/api/v1/comparisons"


def _body(models, **extra):
    return {"template": "Explain {{c}}", "context": {"c": "sets"}, "models": models, **extra}


async def test_blind_comparison_pick_and_reveal(client, ana, otto, run_worker, queued_jobs):
    with stub_model_success({"text": "stub answer"}) as stub:
        created = client.post(
            COMPARISONS, headers=ana, json=_body(["offline/echo", stub], blind=True)
        )
        assert created.status_code == 202, created.text
        body = created.json()
        assert [o["model"] for o in body["outputs"]] == [BLIND_MODEL, BLIND_MODEL]
        assert "offline/echo" not in created.text and stub not in created.text
        assert len(queued_jobs()) == 2
        cid = body["comparison_id"]
        view = client.get(f"{COMPARISONS}/{cid}", headers=ana).json()
        assert [a["label"] for a in view["answers"]] == ["A", "B"]
        assert [a["model"] for a in view["answers"]] == [None, None]
        early = client.post(
            f"{COMPARISONS}/{cid}/pick",
            headers=ana,
            json={"winner_output_id": view["answers"][0]["output_id"]},
        )
        assert early.status_code == 409
        await run_worker()
    assert client.get(f"{COMPARISONS}/{cid}", headers=otto).status_code == 404
    winner = body["outputs"][1]["output_id"]
    picked = client.post(
        f"{COMPARISONS}/{cid}/pick", headers=ana, json={"winner_output_id": winner}
    )
    assert picked.status_code == 200, picked.text
    result = picked.json()
    assert result["picked"] and result["winner_output_id"] == winner
    assert sorted(a["model"] for a in result["answers"]) == sorted(["offline/echo", stub])
    assert next(a for a in result["answers"] if a["model"] == stub)["parsed_output"] == (
        "stub answer"
    )
    tie = client.post(f"{COMPARISONS}/{cid}/pick", headers=ana, json={"winner_output_id": None})
    assert tie.json()["tie"] is True

    board = client.get("/api/v1/leaderboard", headers=ana).json()
    by_model = {e["model"]: e for e in board["entries"]}
    assert by_model[stub]["pairs"] == 1 and by_model[stub]["win_rate"] == 0.5
    assert board["suggested"] is None  # no thumbs yet: nothing to suggest


async def test_blind_answers_show_no_model_in_outputs_or_exports_until_the_pick(
    client, ana, run_worker
):
    created = client.post(
        COMPARISONS, headers=ana, json=_body(["offline/echo", "offline/verbose"], blind=True)
    )
    assert created.status_code == 202, created.text
    body = created.json()
    ids = [o["output_id"] for o in body["outputs"]]
    assert "offline/" not in created.text
    await run_worker()
    for output_id in ids:
        one = client.get(f"/api/v1/llm_outputs/{output_id}", headers=ana).json()
        assert (one["status"], one["model"]) == ("completed", BLIND_MODEL)
    listed = client.get("/api/v1/llm_outputs", headers=ana)
    assert "offline/" not in listed.text
    assert client.get("/api/v1/llm_outputs?model=offline/echo", headers=ana).json()["items"] == []
    exported = client.get("/api/v1/exports", headers=ana)
    assert exported.status_code == 200 and exported.text == ""  # left out until the pick
    assert client.get("/api/v1/exports?model=offline/echo", headers=ana).text == ""
    rerun = client.post(f"/api/v1/llm_outputs/{ids[0]}/re_run", headers=ana)
    assert rerun.status_code == 409 and "offline/" not in rerun.text

    picked = client.post(
        f"{COMPARISONS}/{body['comparison_id']}/pick", headers=ana, json={"winner_output_id": None}
    )
    assert picked.status_code == 200, picked.text
    models = {a["output_id"]: a["model"] for a in picked.json()["answers"]}
    assert sorted(models.values()) == ["offline/echo", "offline/verbose"]
    for output_id in ids:
        assert (
            client.get(f"/api/v1/llm_outputs/{output_id}", headers=ana).json()["model"]
            == (models[output_id])
        )
    records = [
        json.loads(line) for line in client.get("/api/v1/exports", headers=ana).text.splitlines()
    ]
    assert {r["id"]: r["model"] for r in records} == models


def test_comparison_validation_and_idempotency(client, ana, queued_jobs):
    bad = client.post(COMPARISONS, headers=ana, json=_body(["offline/echo"]))
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "models"
    assert queued_jobs() == []
    headers = {**ana, "Idempotency-Key": "cmp-1"}
    with stub_model_success() as stub:
        first = client.post(COMPARISONS, headers=headers, json=_body(["offline/echo", stub]))
        again = client.post(COMPARISONS, headers=headers, json=_body(["offline/echo", stub]))
    assert first.status_code == again.status_code == 202
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    assert len(queued_jobs()) == 2


def test_leaderboard_suggests_within_ceiling(client, ana, pool, analyst):
    from decimal import Decimal

    from db import analytics as analytics_db
    from tasks.testing import create_test_llm_output

    for model, feedback, cost in (
        ("m-a", "thumbs_up", "0.02"),
        ("m-a", "thumbs_up", "0.02"),
        ("m-b", "thumbs_up", "0.001"),
        ("m-b", "thumbs_down", "0.001"),
    ):
        out = create_test_llm_output(pool, analyst, model=model, feedback=feedback)
        with pool.connection() as conn:
            analytics_db.set_output_figures(conn, out.id, cost=Decimal(cost), latency_ms=5)
    assert client.get("/api/v1/leaderboard", headers=ana).json()["suggested"] == "m-a"
    cheap = client.get("/api/v1/leaderboard?cost_ceiling=0.01", headers=ana).json()
    assert cheap["suggested"] == "m-b"
    assert client.get("/api/v1/leaderboard?cost_ceiling=-1", headers=ana).status_code == 422
