"""The pytest helpers shipped for users of the system, used the way a user would."""

from __future__ import annotations

import pytest

from tasks import outputs as jobs
from tasks.testing import (
    assert_llm_job_enqueued,
    create_test_llm_output,
    stub_model_failure,
    stub_model_success,
)


def test_create_test_llm_output_in_each_state(pool, analyst):
    done = create_test_llm_output(
        pool,
        analyst,
        feedback="thumbs_up",
        format="json",
        raw_response='{"a": 1}',
        parsed_output={"a": 1},
    )
    assert (done.status, done.feedback, done.parsed_output) == ("completed", "thumbs_up", {"a": 1})
    failed = create_test_llm_output(pool, analyst, status="failed")
    assert failed.status == "failed" and failed.error_message
    pending = create_test_llm_output(pool, analyst, status="pending")
    assert pending.status == "pending" and pending.completed_at is None


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "html"])
async def test_stub_success_answers_per_format(pool, analyst, run_worker, fmt):
    with stub_model_success({"json": '{"verdict": "yes"}'}) as model:
        sub = jobs.submit(
            pool, user=analyst, template="Q {{q}}", context={"q": 1}, model=model, format=fmt
        )
        await run_worker()
    out = jobs.get_output(pool, sub.output_id, analyst)
    assert out.status == "completed"
    expected = {
        "text": "A stub answer.",
        "json": {"verdict": "yes"},
        "markdown": "## Stub\n\n- a *stub* answer\n",
        "html": "<p>A <strong>stub</strong> answer.</p>",
    }[fmt]
    assert out.parsed_output == expected


@pytest.mark.parametrize(("status", "attempts"), [(401, 1), (400, 1), (503, 6)])
async def test_stub_failure_follows_retry_policy(pool, analyst, run_worker, status, attempts):
    with stub_model_failure(status, "nope") as model:
        sub = jobs.submit(pool, user=analyst, template="Q {{q}}", context={"q": 1}, model=model)
        await run_worker()
    out = jobs.get_output(pool, sub.output_id, analyst)
    assert (out.status, out.attempts) == ("failed", attempts)
    assert "nope" in out.error_message


def test_stub_model_is_unknown_outside_its_block(pool, analyst):
    with stub_model_success() as model:
        pass
    with pytest.raises(Exception, match="no worker serves 'stub"):
        jobs.submit(pool, user=analyst, template="x", model=model)


def test_assert_llm_job_enqueued_passes_and_fails(pool, analyst, llm_stub_success):
    with assert_llm_job_enqueued(pool, template="hello {{n}}", model=llm_stub_success) as found:
        jobs.submit(
            pool, user=analyst, template="hello {{n}}", context={"n": 1}, model=llm_stub_success
        )
    assert len(found) == 1
    with (
        pytest.raises(AssertionError, match="expected 1 LLM job"),
        assert_llm_job_enqueued(pool, template="other"),
    ):
        jobs.submit(
            pool, user=analyst, template="hello {{n}}", context={"n": 2}, model=llm_stub_success
        )
    with pytest.raises(AssertionError), assert_llm_job_enqueued(pool):
        pass
