"""GET /api/v1/exports carries the feedback that explains itself: the golden set's corrected
answers, and reasons, comment and corrected answer on every line."""

from __future__ import annotations

import json

from tasks import feedback
from tasks.testing import create_test_llm_output


def test_exports_give_corrected_answers_and_reasons(client, ana, pool, analyst):
    up = create_test_llm_output(pool, analyst, feedback="thumbs_up", raw_response="good")
    down = create_test_llm_output(pool, analyst, raw_response="bad")
    feedback.set_feedback(
        pool,
        down.id,
        analyst,
        "thumbs_down",
        reasons=["incomplete"],
        comment="half of it",
        corrected_answer="good and complete",
    )
    golden = client.get("/api/v1/exports?kind=golden", headers=ana)
    assert golden.status_code == 200, golden.text
    lines = {r["id"]: r for r in map(json.loads, golden.text.splitlines())}
    assert list(lines) == [up.id, down.id]
    fixed = lines[down.id]
    assert (fixed["output"], fixed["corrected"], fixed["original_answer"]) == (
        "good and complete",
        True,
        "bad",
    )
    assert fixed["messages"][-1] == {"role": "assistant", "content": "good and complete"}
    assert (fixed["reasons"], fixed["comment"]) == (["incomplete"], "half of it")
    assert fixed["judge_verdicts"] == []
    assert lines[up.id]["corrected"] is False and lines[up.id]["output"] == "good"
    evals = [
        json.loads(x)
        for x in client.get("/api/v1/exports?kind=eval", headers=ana).text.splitlines()
    ]
    assert [(r["id"], r["output"], r["corrected_answer"]) for r in evals] == [
        (down.id, "bad", "good and complete")
    ]
