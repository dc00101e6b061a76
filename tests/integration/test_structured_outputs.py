"""Structured outputs end to end: a JSON Schema checked at submit (nothing written when refused),
asked of the model natively or in the instruction (what the request carried, at the scripted
provider), every answer validated, re-asked with the validator's errors, then failed with them;
the offline models' answers validate, and offline/flaky's re-ask shows."""

from __future__ import annotations

import json

import pytest

from tasks import outputs as jobs
from tasks.errors import InvalidInput
from tasks.llm import formats, offline
from tests.support.provider import ok

REVIEW = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "risks": {"type": "array", "items": {"type": "string"}},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["summary", "risks", "score"],
}
GOOD = '{"summary": "fine", "risks": ["late"], "score": 4}'


def _submit(pool, user, model, schema=REVIEW, fmt="json", **more):
    return jobs.submit(
        pool,
        user=user,
        template="Review {{plan}}",
        context={"plan": "the launch"},
        model=model,
        format=fmt,
        json_schema=schema,
        **more,
    )


def _count(pool) -> int:
    with pool.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM llm_outputs").fetchone()["n"]


@pytest.mark.parametrize(
    ("fmt", "schema", "says"),
    [
        (
            "text",
            REVIEW,
            "json_schema: only a json output takes a JSON Schema (the format is text)",
        ),
        ("json", {"type": "nope"}, "json_schema: $.type: 'nope' is not valid"),
        ("json", '{"$ref": "http://x/s"}', "points outside the schema"),
        ("json", "[]", "a JSON Schema is a JSON object"),
    ],
)
def test_a_bad_schema_is_refused_at_submit_and_nothing_is_written(pool, analyst, fmt, schema, says):
    with pytest.raises(InvalidInput) as caught:
        _submit(pool, analyst, "offline/echo", schema=schema, fmt=fmt)
    assert caught.value.field == "json_schema"
    assert says in str(caught.value)
    assert _count(pool) == 0


async def test_a_model_without_native_schemas_gets_it_in_the_instruction(
    pool, analyst, run_worker, provider
):
    provider.push(ok(GOOD))
    sub = _submit(pool, analyst, "openai/plain-model")
    await run_worker()
    out = jobs.get_output(pool, sub.output_id, analyst)
    assert (out.status, out.schema_valid, out.schema_first_try) == ("completed", True, True)
    assert out.parsed_output == json.loads(GOOD) and out.json_schema == REVIEW
    [request] = provider.requests
    assert "response_format" not in request
    system = request["messages"][0]["content"]
    assert formats.SCHEMA_MARKER in system
    assert json.loads(system.split(formats.SCHEMA_MARKER, 1)[1]) == REVIEW


async def test_a_model_with_native_schemas_is_asked_for_it_as_its_response_format(
    pool, analyst, run_worker, provider
):
    provider.push(ok(GOOD))
    sub = _submit(pool, analyst, "openai/gpt-4o-mini")
    await run_worker()
    assert jobs.get_output(pool, sub.output_id, analyst).status == "completed"
    [request] = provider.requests
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["schema"] == REVIEW


async def test_an_answer_breaking_the_schema_is_reasked_with_the_errors(
    pool, analyst, run_worker, provider
):
    # the provider claims schema support; its answer is validated all the same
    provider.push(ok('{"summary": "fine", "risks": ["late"], "score": 9}'), ok(GOOD))
    sub = _submit(pool, analyst, "openai/gpt-4o-mini")
    await run_worker()
    out = jobs.get_output(pool, sub.output_id, analyst)
    assert (out.status, out.schema_valid, out.schema_first_try) == ("completed", True, False)
    assert out.attempts == 1  # a re-ask is not a retry
    reask = provider.requests[1]["messages"][-1]["content"]
    assert "does not match the JSON Schema: $.score: 9 is greater than the maximum of 5" in reask


async def test_an_answer_that_never_validates_fails_with_its_errors_and_keeps_the_answer(
    pool, analyst, run_worker, provider
):
    wrong = '{"summary": 3, "risks": "none"}'
    provider.push(ok(wrong), ok(wrong), ok(wrong))
    sub = _submit(pool, analyst, "openai/plain-model")
    await run_worker()
    out = jobs.get_output(pool, sub.output_id, analyst)
    assert out.status == "failed"
    assert len(provider.requests) == 3
    assert out.error_message.startswith("the answer does not match its JSON Schema: ")
    assert "$: 'score' is a required property" in out.error_message
    assert "$.summary: 3 is not of type 'string'" in out.error_message
    assert out.raw_response == wrong
    assert (out.schema_valid, out.schema_first_try) == (False, False)
    assert {"path": "$.summary", "message": "3 is not of type 'string'"} in out.schema_errors


@pytest.mark.parametrize("model", offline.NAMES)
async def test_every_offline_model_answers_a_value_of_the_schema(pool, analyst, run_worker, model):
    subs = [
        jobs.submit(
            pool,
            user=analyst,
            template="Review {{plan}}",
            context={"plan": f"plan number {n}"},
            model=model,
            format="json",
            json_schema=REVIEW,
        )
        for n in range(8)
    ]
    await run_worker()
    outs = [jobs.get_output(pool, s.output_id, analyst) for s in subs]
    assert {(o.status, o.schema_valid) for o in outs} == {("completed", True)}
    assert all(1 <= o.parsed_output["score"] <= 5 for o in outs)
    first_tries = {o.schema_first_try for o in outs}
    # offline/flaky breaks the schema on one prompt in four, and its re-ask validates
    assert first_tries == ({True, False} if model == "offline/flaky" else {True})


async def test_re_run_and_regenerate_keep_the_schema_while_the_answer_is_json(
    pool, analyst, run_worker
):
    sub = _submit(pool, analyst, "offline/echo")
    await run_worker()
    again = jobs.re_run(pool, sub.output_id, analyst)
    assert jobs.get_output(pool, again.output_id, analyst).json_schema == REVIEW
    other = jobs.regenerate(pool, sub.output_id, analyst, new_model="offline/brief")
    assert jobs.get_output(pool, other.output_id, analyst).json_schema == REVIEW
    text = jobs.regenerate(pool, sub.output_id, analyst, new_format="text")
    assert jobs.get_output(pool, text.output_id, analyst).json_schema is None


async def test_the_cache_tells_schemas_apart(pool, analyst, run_worker):
    first = _submit(pool, analyst, "offline/echo", cache=True)
    await run_worker()
    other = _submit(pool, analyst, "offline/echo", schema={"type": "object"}, cache=True)
    same = _submit(pool, analyst, "offline/echo", cache=True)
    await run_worker()
    assert jobs.get_output(pool, other.output_id, analyst).cache_hit_of is None
    hit = jobs.get_output(pool, same.output_id, analyst)
    assert (hit.cache_hit_of, hit.schema_valid) == (first.output_id, True)


def test_the_cli_takes_a_schema_as_json_or_a_file(database_url, pool, analyst, tmp_path):
    from tests.integration.test_cli import llmjobs

    schema_file = tmp_path / "review.json"
    schema_file.write_text(json.dumps(REVIEW))
    common = ["submit", "--template", "Review it", "--format", "json", "--user", analyst.name]
    for given in (str(schema_file), json.dumps(REVIEW)):
        done = llmjobs(*common, "--model", "offline/echo", "--schema", given)
        assert done.returncode == 0, done.stderr
        output_id = json.loads(done.stdout)["output_id"]
        assert jobs.get_output(pool, output_id, analyst).json_schema == REVIEW
    empty = tmp_path / "empty.json"
    empty.write_text(" \n")
    for given, says in (
        (str(tmp_path / "missing.json"), "json_schema: cannot read"),
        ('{"type": "strin"}', "json_schema: $.type: 'strin' is not valid"),
        ('[{"type": "string"}]', "json_schema: a JSON Schema is a JSON object"),
        ("42", "json_schema: a JSON Schema is a JSON object"),
        ("", "json_schema: is empty"),
        (str(empty), f"json_schema: '{empty}' is empty"),
        ('{"maximum": NaN}', "json_schema: holds a number JSON cannot carry"),
        ("x" * 100_000, "json_schema: cannot read 'xxx"),
    ):
        refused = llmjobs(*common, "--model", "offline/echo", "--schema", given)
        assert refused.returncode == 2 and refused.stdout == ""
        assert refused.stderr.startswith(f"error: {says}"), refused.stderr
        assert len(refused.stderr) < 400
    big = tmp_path / "big.json"
    big.write_text('{"enum": ["' + "x" * 70_000 + '"]}')
    refused = llmjobs(*common, "--model", "offline/echo", "--schema", str(big))
    assert refused.returncode == 2 and "larger than 65,536 bytes" in refused.stderr
    assert _count(pool) == 2


async def test_the_pytest_plugin_takes_a_schema_the_same_way(pool, analyst, run_worker):
    from tasks.testing import assert_llm_job_enqueued, create_test_llm_output, stub_model_success

    valid = create_test_llm_output(
        pool,
        analyst,
        format="json",
        json_schema=REVIEW,
        parsed_output={"summary": "s", "risks": [], "score": 2},
        raw_response="{}",
    )
    broken = create_test_llm_output(
        pool,
        analyst,
        format="json",
        json_schema=REVIEW,
        parsed_output={"score": 9},
        raw_response="{}",
    )
    assert (valid.schema_valid, broken.schema_valid) == (True, False)
    with pytest.raises(InvalidInput, match="json_schema: only a json output"):
        create_test_llm_output(pool, analyst, json_schema=REVIEW)
    with stub_model_success() as model:
        with assert_llm_job_enqueued(pool, model=model, json_schema=REVIEW):
            sub = _submit(pool, analyst, model)
        await run_worker()
    out = jobs.get_output(pool, sub.output_id, analyst)
    # the stub answers a value of the schema it is asked for
    assert (out.status, out.schema_valid, out.schema_first_try) == ("completed", True, True)
    expecting = assert_llm_job_enqueued(pool, json_schema={"type": "object"})
    with pytest.raises(AssertionError, match="and that JSON Schema"), expecting:
        _submit(pool, analyst, "offline/echo")
