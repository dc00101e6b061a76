"""Comparisons and the leaderboard through the HTTP API."""

from __future__ import annotations

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
        assert [o["model"] for o in body["outputs"]] == ["offline/echo", stub]
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
    assert [a["model"] for a in result["answers"]] == ["offline/echo", stub]
    assert result["answers"][1]["parsed_output"] == "stub answer"
    tie = client.post(f"{COMPARISONS}/{cid}/pick", headers=ana, json={"winner_output_id": None})
    assert tie.json()["tie"] is True

    board = client.get("/api/v1/leaderboard", headers=ana).json()
    by_model = {e["model"]: e for e in board["entries"]}
    assert by_model[stub]["pairs"] == 1 and by_model[stub]["win_rate"] == 0.5
    assert board["suggested"] is None  # no thumbs yet: nothing to suggest


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
