"""The offline models: each answers every format, deterministically, in its own style."""

from __future__ import annotations

import json

import pytest

from tasks.llm import offline
from tasks.llm.formats import FORMATS, parse
from tasks.worker.job import build_messages

PROMPTS = [f"Explain topic number {i} to a beginner" for i in range(40)]


def _answer(model: str, fmt: str, prompt: str = PROMPTS[1]) -> str:
    return offline.answer(build_messages(prompt, fmt, None), model)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model", offline.MODELS)
def test_each_model_answers_each_format_the_same_way_twice(model, fmt):
    prompt = next(p for p in PROMPTS if not offline.flaky_json(p))
    first = _answer(model, fmt, prompt)
    assert first == _answer(model, fmt, prompt)
    parse(fmt, first)  # fits the format: json parses
    if fmt == "html":
        assert first.startswith("<")
    if fmt == "markdown" and model != "brief":
        assert first.startswith("#")


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_models_differ_in_length(fmt):
    prompt = PROMPTS[2]
    brief, verbose = _answer("brief", fmt, prompt), _answer("verbose", fmt, prompt)
    assert len(brief) * 3 < len(verbose)
    assert len({_answer(m, fmt, prompt) for m in offline.MODELS}) == len(offline.MODELS)


def test_echo_keeps_its_answers():
    assert _answer("echo", "text", "Say hi") == "Echo: Say hi"
    assert json.loads(_answer("echo", "json", "Say hi"))["prompt"] == "Say hi"


def test_latency_is_deterministic_and_spread_by_model():
    assert {offline.latency_ms("echo", p) for p in PROMPTS} == {0}
    for model in ("brief", "verbose", "flaky"):
        low, high = offline.LATENCY_MS[model]
        spread = [offline.latency_ms(model, p) for p in PROMPTS]
        assert spread == [offline.latency_ms(model, p) for p in PROMPTS]
        assert all(low <= ms <= high for ms in spread)
        assert len(set(spread)) > 10
    assert max(offline.latency_ms("brief", p) for p in PROMPTS) < min(
        offline.latency_ms("verbose", p) for p in PROMPTS
    )


def test_flaky_breaks_about_one_json_prompt_in_four_and_mends_it_when_reasked():
    broken = [p for p in PROMPTS if offline.flaky_json(p)]
    assert 4 <= len(broken) <= 18
    prompt = broken[0]
    with pytest.raises(ValueError):
        json.loads(_answer("flaky", "json", prompt))
    reask = [
        *build_messages(prompt, "json", None),
        {"role": "assistant", "content": "not json"},
        {"role": "user", "content": "That was not valid JSON."},
    ]
    assert json.loads(offline.answer(reask, "flaky"))["answer"]
    fine = next(p for p in PROMPTS if not offline.flaky_json(p))
    assert json.loads(_answer("flaky", "json", fine))
    # other formats never break
    assert _answer("flaky", "text", prompt) == _answer("flaky", "text", prompt)
