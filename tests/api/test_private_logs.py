"""No log line carries what a job handles: its context values, its rendered prompt, its answer;
a provider's error that quotes the prompt is cut before it is logged or stored."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from tasks.logs import CUT, configure_logging, cut_echoes
from tests.support.provider import Step, error, ok

# One value in a context; the template around it makes the rest of the prompt.
SENTINEL = "Zephyrine Quokkafeld, account 88-4471-ZQ"
SHORT = "Ngaio"  # a value too short to be a run of the prompt: withheld as a whole
TEMPLATE = "Write to {{customer}} ({{nickname}}) about the late refund of {{amount}} dollars."


def _quoting(status: int) -> Any:
    """A provider error that quotes the prompt it was sent, as some providers do."""

    def step(body: dict[str, Any]) -> Step:
        prompt = str(body["messages"][-1]["content"])
        return error(status, f"Request rejected. Offending input: '{prompt}'")

    return step


@pytest.fixture
def every_line():
    """Every JSON log line of this process from now on, at DEBUG: ours and the libraries'."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("DEBUG", stream=stream)
    yield lambda: stream.getvalue()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


async def test_no_log_line_carries_a_context_value_prompt_or_answer(
    client, ana, provider, run_worker, every_line
):
    context = {"customer": SENTINEL, "nickname": SHORT, "amount": 1234.5}
    # the first job: a 503 quoting the prompt (retried), then a 400 quoting it (failed)
    provider.push(_quoting(503), _quoting(400))
    failing = client.post(
        "/api/v1/llm_jobs",
        headers=ana,
        json={"template": TEMPLATE, "context": context, "model": "openai/m", "format": "text"},
    ).json()
    await run_worker(concurrency=1)
    # the second: an answer repeating the customer's name, then feedback quoting it
    provider.push(ok(f"Dear {SENTINEL}, your refund of 1234.5 dollars is on its way."))
    done = client.post(
        "/api/v1/llm_jobs",
        headers=ana,
        json={"template": TEMPLATE, "context": context, "model": "openai/m", "format": "text"},
    ).json()
    await run_worker(concurrency=1)
    rated = client.post(
        f"/api/v1/llm_outputs/{done['output_id']}/feedback",
        headers=ana,
        json={
            "feedback": "thumbs_down",
            "reasons": ["wrong"],
            "comment": f"not {SENTINEL}",
            "corrected_answer": f"Dear {SENTINEL}, the refund left today.",
        },
    )
    assert rated.status_code == 200, rated.text
    exported = client.get("/api/v1/exports", headers=ana)
    assert exported.status_code == 200 and SENTINEL in exported.text  # the data is all there

    failed = client.get(f"/api/v1/llm_outputs/{failing['output_id']}", headers=ana).json()
    assert failed["status"] == "failed" and failed["attempts"] == 2
    # the stored error keeps what the provider said, with the quote of the prompt cut
    assert "Request rejected. Offending input: '" in failed["error_message"]
    assert CUT in failed["error_message"] and SENTINEL not in failed["error_message"]
    assert client.get(f"/api/v1/llm_outputs/{done['output_id']}", headers=ana).json()["status"] == (
        "completed"
    )

    text = every_line()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    messages = {line["message"] for line in lines}
    # the path was logged: a retry, a failure quoting the provider, a completion, feedback, export
    assert {"retry scheduled", "failed", "completed", "feedback", "request"} <= messages
    failure = next(line for line in lines if line["message"] == "failed")
    assert "Request rejected" in failure["error"] and CUT in failure["error"]
    for secret in (SENTINEL, "88-4471-ZQ", SHORT, "late refund of 1234.5 dollars"):
        assert secret not in text, secret


def test_a_quote_is_cut_wherever_it_starts_and_ordinary_words_stay():
    prompt = "Summarise the complaint of Jane Roe about invoice 88231: the parcel never came."
    message = (
        "BadRequestError: the input 'complaint of Jane Roe about invoice' was flagged; "
        "see the model's policy"
    )
    cut = cut_echoes(message, [prompt, "Jane Roe"])
    assert cut == f"BadRequestError: the input '{CUT}' was flagged; see the model's policy"
    # a short run shared by chance with the prompt ("the ") is not a quote
    assert cut_echoes("the model is busy", [prompt]) == "the model is busy"
    # a value shorter than four characters is not looked for
    assert cut_echoes("a 503 from the server", ["503"]) == "a 503 from the server"
