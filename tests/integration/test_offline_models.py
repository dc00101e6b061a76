"""The offline models through a real worker: cost 0, and offline/flaky's bad JSON re-asked."""

from __future__ import annotations

import json

from tasks import outputs as jobs
from tasks.cli.main import main
from tasks.llm import offline


def _submit(pool, user, concept: str, model: str, fmt: str):
    return jobs.submit(
        pool,
        user=user,
        template="Explain {{concept}} to a beginner",
        context={"concept": concept},
        model=model,
        format=fmt,
    )


def _concept(broken: bool) -> str:
    return next(
        c
        for c in (f"idea {i}" for i in range(100))
        if offline.flaky_json(f"Explain {c} to a beginner") is broken
    )


async def test_flaky_invalid_json_is_reasked_and_completes(pool, analyst, run_worker, monkeypatch):
    seen: list[list[dict]] = []
    answer = offline.answer

    def recording(messages, model="echo"):
        seen.append(messages)
        return answer(messages, model)

    monkeypatch.setattr(offline, "answer", recording)
    flaky = _submit(pool, analyst, _concept(broken=True), "offline/flaky", "json")
    steady = _submit(pool, analyst, _concept(broken=False), "offline/flaky", "json")
    await run_worker()
    out = jobs.get_output(pool, flaky.output_id, analyst)
    assert out.status == "completed", out.error_message
    assert out.parsed_output["answer"].startswith("Explain idea")
    assert len(seen) == 3  # the broken one twice, the steady one once
    reask = next(m for m in seen if len(m) > 2)
    assert reask[-2]["content"].startswith("Sure! Here is the JSON")
    assert "not valid JSON" in reask[-1]["content"]
    assert jobs.get_output(pool, steady.output_id, analyst).status == "completed"


async def test_each_offline_model_completes_at_no_cost(pool, analyst, run_worker):
    subs = {m: _submit(pool, analyst, "caching", m, "markdown") for m in offline.NAMES}
    await run_worker()
    answers = {}
    for model, sub in subs.items():
        out = jobs.get_output(pool, sub.output_id, analyst)
        assert out.status == "completed", out.error_message
        assert float(out.cost) == 0.0
        answers[model] = out.parsed_output
    assert len(set(answers.values())) == len(offline.NAMES)
    assert len(answers["offline/verbose"]) > 3 * len(answers["offline/brief"])


def test_the_models_command_lists_every_offline_model_first(database_url, capsys):
    assert main(["models"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed[:4]] == list(offline.NAMES)
    assert all(m["offline"] for m in listed[:4])
