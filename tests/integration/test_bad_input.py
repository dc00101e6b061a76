"""Bad input and bad answers: a clear error or a clearly marked result, nothing written wrongly,
nothing stuck."""

from __future__ import annotations

import pytest

from tasks import feedback
from tasks import outputs as jobs
from tasks.errors import InvalidInput, NotFound
from tasks.testing import create_test_llm_output
from tests.support.provider import ok

SQL_TRICKS = ["'; DROP TABLE users; --", "%(user_id)s", "\\", "' OR '1'='1", "%", "_"]


async def _one(pool, analyst, run_worker, *, fmt="text", model="openai/m"):
    sub = jobs.submit(
        pool, user=analyst, template="Q {{q}}", context={"q": 1}, model=model, format=fmt
    )
    await run_worker()
    return jobs.get_output(pool, sub.output_id, analyst)


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
async def test_empty_answer_fails_with_message(pool, analyst, provider, run_worker, fmt):
    provider.push(ok("   "))
    out = await _one(pool, analyst, run_worker, fmt=fmt)
    assert (out.status, out.error_message) == ("failed", "the model returned an empty answer")
    assert out.attempts == 1


async def test_empty_json_answer_is_reasked(pool, analyst, provider, run_worker):
    provider.push(ok(""), ok("[]"))
    out = await _one(pool, analyst, run_worker, fmt="json")
    assert (out.status, out.parsed_output) == ("completed", [])


async def test_enormous_answer_is_capped_and_says_so(
    pool, analyst, provider, run_worker, settings_env
):
    settings_env(MAX_RESPONSE_CHARS="1000")
    provider.push(ok("x" * 50_000))
    out = await _one(pool, analyst, run_worker)
    assert out.status == "completed"
    assert out.raw_response.startswith("x" * 1000)
    assert "[truncated: the answer had 50000 characters, 1000 kept]" in out.raw_response
    assert len(out.raw_response) < 1100


async def test_hostile_html_is_stored_sanitized(pool, analyst, provider, run_worker):
    provider.push(
        ok(
            '<p>hi</p><script>alert(1)</script><img src=x onerror="alert(2)">'
            '<a href="javascript:alert(3)">x</a>'
        )
    )
    out = await _one(pool, analyst, run_worker, fmt="html")
    assert out.status == "completed"
    for bad in ("<script", "onerror", "javascript:"):
        assert bad not in out.parsed_output
        assert bad in out.raw_response  # the raw answer is kept as it came, for the record


async def test_markdown_with_raw_html_is_kept_as_text(pool, analyst, provider, run_worker):
    provider.push(ok("# T\n<script>alert(1)</script>"))
    out = await _one(pool, analyst, run_worker, fmt="markdown")
    # stored as written; front ends render markdown without raw HTML
    assert out.parsed_output == "# T\n<script>alert(1)</script>"


@pytest.mark.parametrize("trick", SQL_TRICKS)
def test_sql_metacharacters_in_filters_are_plain_values(pool, analyst, trick):
    create_test_llm_output(pool, analyst)
    assert jobs.list_outputs(pool, analyst, template=trick) == []
    for field in ("status", "format", "feedback"):  # one of a few values: refused, named
        with pytest.raises(InvalidInput) as caught:
            jobs.list_outputs(pool, analyst, **{field: trick})
        assert caught.value.field == field
    try:  # a model name: refused when no model could bear it, else matches nothing
        assert jobs.list_outputs(pool, analyst, model=trick) == []
    except InvalidInput as refused:
        assert refused.field == "model"
    assert len(jobs.list_outputs(pool, analyst)) == 1  # nothing dropped


@pytest.mark.parametrize("output_id", [0, -1, 999_999, 2**63, 10**30])
def test_unknown_or_impossible_output_ids_are_not_found(pool, analyst, output_id):
    with pytest.raises(NotFound):
        jobs.get_output(pool, output_id, analyst)
    with pytest.raises(NotFound):
        jobs.re_run(pool, output_id, analyst)
    with pytest.raises(NotFound):
        feedback.set_feedback(pool, output_id, analyst, "thumbs_up")


@pytest.mark.parametrize("limit", [-5, 0, 501, 10**12])
def test_page_sizes_out_of_bounds(pool, analyst, limit):
    with pytest.raises(InvalidInput) as caught:
        jobs.list_outputs(pool, analyst, limit=limit)
    assert caught.value.field == "limit"


@pytest.mark.parametrize("before_id", [-1, 0, 2**64])
def test_page_cursor_out_of_bounds(pool, analyst, before_id):
    with pytest.raises(InvalidInput) as caught:
        jobs.list_outputs(pool, analyst, before_id=before_id)
    assert caught.value.field == "before_id"


def test_nul_in_filter_is_refused(pool, analyst):
    with pytest.raises(InvalidInput) as caught:
        jobs.list_outputs(pool, analyst, template="a\x00b")
    assert caught.value.field == "template"


def test_huge_template_and_context_refused_before_writing(pool, analyst):
    for params in ({"template": "x" * 40_000}, {"context": {"k": "v" * 70_000}}):
        with pytest.raises(InvalidInput):
            jobs.submit(
                pool,
                user=analyst,
                model="offline/echo",
                **{"template": "{{k}}", "context": {"k": 1}, **params},
            )
    assert jobs.list_outputs(pool, analyst) == []


async def test_json_answer_nested_too_deeply_is_reasked_then_fails(
    pool, analyst, provider, run_worker
):
    deep = "[" * 500 + "]" * 500
    provider.push(ok(deep), ok(deep), ok(deep))
    out = await _one(pool, analyst, run_worker, fmt="json")
    assert out.status == "failed"
    assert "the answer is nested too deeply" in out.error_message
    assert out.raw_response == deep
