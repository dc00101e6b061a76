"""A JSON Schema beyond one submission: saved with a library template version (shown in its
diff, given to the outputs submitted by name unless the caller gives one), held by a json agent
as its default, carried by a batch for all its rows (with a CSV column per top-level property)
and by a comparison for every model's answer; a bad schema is refused everywhere with nothing
written."""

from __future__ import annotations

import csv
import io
import json

import pytest

from db import outputs as outputs_db
from tasks import agents, batches, comparisons, templates
from tasks import outputs as jobs
from tasks.csvcells import safe_cell
from tasks.errors import InvalidInput

REVIEW = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "score": {"type": "integer"}},
    "required": ["summary", "score"],
}
OTHER = {"type": "object", "properties": {"verdict": {"type": "boolean"}}, "required": ["verdict"]}
HOSTILE = "=cmd|' /C calc'!A0"
BAD_SCHEMAS = [{"type": "nope"}, '{"$ref": "http://x/s"}', "[]"]


def _count(pool, table: str) -> int:
    queries = {
        "llm_outputs": "SELECT count(*) AS n FROM llm_outputs",
        "batches": "SELECT count(*) AS n FROM batches",
        "comparisons": "SELECT count(*) AS n FROM comparisons",
        "agents": "SELECT count(*) AS n FROM agents",
        "prompt_template_versions": "SELECT count(*) AS n FROM prompt_template_versions",
    }
    with pool.connection() as conn:
        return conn.execute(queries[table]).fetchone()["n"]


def _output(pool, user, submission):
    return jobs.get_output(pool, submission.output_id, user)


def _batch(pool, user, data: bytes, template: str, schema):
    """A json batch of the CSV data's rows to offline/echo, with schema."""
    parsed = batches.parse_file(data, "rows.csv")
    return batches.submit_batch(
        pool,
        user=user,
        template=template,
        model="offline/echo",
        rows=parsed.rows,
        columns=parsed.columns,
        format="json",
        json_schema=schema,
    )


def test_a_template_version_keeps_its_schema_and_the_diff_shows_a_change(pool, analyst):
    first = templates.save_template(pool, analyst, "review", "Review {{plan}}", "", REVIEW)
    assert first.json_schema == REVIEW
    again = templates.save_template(pool, analyst, "review", "Review {{plan}}", "", REVIEW)
    assert again.version == first.version  # nothing changed: no new version
    second = templates.save_template(pool, analyst, "review", "Review {{plan}}", "", OTHER)
    assert second.version == first.version + 1
    assert templates.get_version(pool, "review", first.version).json_schema == REVIEW
    difference = templates.diff_versions(first, second)
    assert "v1 JSON Schema" in difference and "v2 JSON Schema" in difference
    assert '-    "summary": {' in difference and '+    "verdict": {' in difference
    same_body = difference.split("JSON Schema")[0]
    assert "Review" not in same_body  # the bodies are equal: only the schema's diff is there
    third = templates.save_template(pool, analyst, "review", "Review {{plan}}", "", "")
    assert third.json_schema is None and third.version == second.version + 1


def test_submitting_by_template_name_gives_the_output_the_versions_schema(pool, analyst):
    templates.save_template(pool, analyst, "review", "Review {{plan}}", "", REVIEW)
    submission = jobs.submit(
        pool,
        user=analyst,
        template=None,
        template_name="review",
        context={"plan": "x"},
        model="offline/echo",
    )
    output = _output(pool, analyst, submission)
    assert (output.format, output.json_schema) == ("json", REVIEW)


def test_the_callers_schema_wins_over_the_versions(pool, analyst):
    templates.save_template(pool, analyst, "review", "Review {{plan}}", "", REVIEW)
    submission = jobs.submit(
        pool,
        user=analyst,
        template=None,
        template_name="review",
        context={"plan": "x"},
        model="offline/echo",
        format="json",
        json_schema=OTHER,
    )
    assert _output(pool, analyst, submission).json_schema == OTHER


def test_a_version_with_a_schema_refuses_another_format_by_name(pool, analyst):
    templates.save_template(pool, analyst, "review", "Review {{plan}}", "", REVIEW)
    with pytest.raises(InvalidInput) as caught:
        jobs.submit(
            pool,
            user=analyst,
            template=None,
            template_name="review",
            context={"plan": "x"},
            model="offline/echo",
            format="text",
        )
    assert caught.value.field == "format"
    assert "carries a JSON Schema" in caught.value.message and "json" in caught.value.message
    assert _count(pool, "llm_outputs") == 0


def test_an_agents_default_schema_applies_to_its_json_submissions_only(pool, analyst):
    agent = agents.create_agent(
        pool,
        analyst,
        name="reviewer",
        default_model="offline/echo",
        default_format="json",
        default_json_schema=json.dumps(REVIEW),
    )
    assert agent.default_json_schema == REVIEW
    plain = jobs.submit(
        pool, user=analyst, template="Review {{p}}", context={"p": 1}, model=None, agent="reviewer"
    )
    assert _output(pool, analyst, plain).json_schema == REVIEW
    given = jobs.submit(
        pool, user=analyst, template="Review", model=None, agent="reviewer", json_schema=OTHER
    )
    assert _output(pool, analyst, given).json_schema == OTHER
    as_text = jobs.submit(
        pool, user=analyst, template="Review", model=None, agent="reviewer", format="text"
    )
    output = _output(pool, analyst, as_text)
    assert (output.format, output.json_schema) == ("text", None)


def test_only_a_json_agent_takes_a_default_schema(pool, analyst):
    with pytest.raises(InvalidInput) as caught:
        agents.create_agent(
            pool,
            analyst,
            name="writer",
            default_model="offline/echo",
            default_format="text",
            default_json_schema=REVIEW,
        )
    assert caught.value.field == "json_schema" and "default format is text" in caught.value.message
    assert _count(pool, "agents") == 0


def test_a_batch_gives_every_row_its_schema(pool, analyst):
    batch = _batch(pool, analyst, b"plan\nlaunch\nhiring\nbudget\n", "Review {{plan}}", REVIEW)
    assert batch.json_schema == REVIEW
    with pool.connection() as conn:
        rows = outputs_db.list_outputs(conn, limit=10, batch_id=batch.id)
    assert len(rows) == 3 and all(r.json_schema == REVIEW for r in rows)


async def test_the_batch_csv_has_a_column_per_property_made_safe(pool, analyst, run_worker):
    schema = {
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "score": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "ok": {"type": "boolean"},
            HOSTILE: {"type": "string"},
            "status": {"type": "string"},
            "plan": {"type": "string"},
        },
        "required": ["summary", "score", "tags", "ok", HOSTILE, "status", "plan"],
    }
    batch = _batch(pool, analyst, b"plan\nlaunch\nhiring\n", "Review {{plan}}", schema)
    await run_worker()
    text = batches.results(pool, batch.id, analyst, "csv")
    header, *lines = list(csv.reader(io.StringIO(text)))
    answers = ["summary", "score", "tags", "ok", safe_cell(HOSTILE), "answer.status", "answer.plan"]
    assert header[-len(answers) :] == answers
    assert header[: -len(answers)].count("status") == 1 and "plan" in header[: -len(answers)]
    assert not any(name.startswith(("=", "+", "-", "@")) for name in header)
    table = [dict(zip(header, line, strict=True)) for line in lines]
    assert len(table) == 2
    for row in table:
        output = jobs.get_output(pool, int(row["output_id"]), analyst)
        assert output.status == "completed" and output.schema_valid
        answer = output.parsed_output
        assert row["summary"] == safe_cell(answer["summary"])
        assert row["score"] == str(answer["score"])
        assert row["tags"] == safe_cell(json.dumps(answer["tags"], ensure_ascii=False))
        assert row["ok"] == json.dumps(answer["ok"])
        assert row[safe_cell(HOSTILE)] == safe_cell(answer[HOSTILE])
        assert row["answer.status"] == safe_cell(answer["status"])
        assert row["status"] == "completed"  # the row's own status stays in its column
        assert row["answer.plan"] == safe_cell(answer["plan"])
        assert row["plan"] == output.context["plan"]


def test_answer_columns_stay_distinct_after_they_are_made_safe():
    schema = {"properties": {"=a": {}, "'=a": {}, "output": {}, "answer.output": {}}}
    columns = batches.answer_columns(schema, ["row", "'=a", "output"])
    assert list(columns.values()) == ["=a", "'=a", "output", "answer.output"]
    assert len(set(columns) | {"row", "'=a", "output"}) == len(columns) + 3
    assert all(not c.startswith(("=", "+", "-", "@")) for c in columns)
    assert batches.answer_columns({"type": "array", "properties": {"a": {}}}, []) == {}
    assert batches.answer_columns(None, []) == {}


def test_a_comparison_gives_every_models_answer_its_schema(pool, analyst):
    submission = comparisons.submit_comparison(
        pool,
        user=analyst,
        template="Review {{plan}}",
        context={"plan": "launch"},
        models=["offline/echo", "offline/brief"],
        format="json",
        json_schema=REVIEW,
    )
    view = comparisons.get_comparison(pool, submission.comparison_id, analyst)
    assert len(view.outputs) == 2 and all(o.json_schema == REVIEW for o in view.outputs)
    with pool.connection() as conn:
        stored = conn.execute(
            "SELECT json_schema FROM comparisons WHERE id = %s", (submission.comparison_id,)
        ).fetchone()
    assert stored["json_schema"] == REVIEW


@pytest.mark.parametrize("bad", BAD_SCHEMAS)
def test_a_bad_schema_is_refused_everywhere_and_nothing_is_written(pool, analyst, bad):
    attempts = {
        "prompt_template_versions": lambda: templates.save_template(
            pool, analyst, "review", "Review", "", bad
        ),
        "agents": lambda: agents.create_agent(
            pool,
            analyst,
            name="reviewer",
            default_model="offline/echo",
            default_format="json",
            default_json_schema=bad,
        ),
        "batches": lambda: batches.submit_batch(
            pool,
            user=analyst,
            template="Review {{plan}}",
            model="offline/echo",
            rows=[{"plan": "a"}, {"plan": "b"}],
            format="json",
            json_schema=bad,
        ),
        "comparisons": lambda: comparisons.submit_comparison(
            pool,
            user=analyst,
            template="Review",
            context={},
            models=["offline/echo", "offline/brief"],
            format="json",
            json_schema=bad,
        ),
    }
    for table, attempt in attempts.items():
        with pytest.raises(InvalidInput) as caught:
            attempt()
        assert caught.value.field == "json_schema", table
        assert _count(pool, table) == 0, table
    assert _count(pool, "llm_outputs") == 0


def test_a_batch_or_comparison_schema_needs_format_json(pool, analyst):
    with pytest.raises(InvalidInput) as caught:
        batches.submit_batch(
            pool,
            user=analyst,
            template="Review {{plan}}",
            model="offline/echo",
            rows=[{"plan": "a"}],
            format="text",
            json_schema=REVIEW,
        )
    assert caught.value.field == "json_schema" and "the format is text" in caught.value.message
    assert _count(pool, "batches") == 0 and _count(pool, "llm_outputs") == 0


def test_the_cli_takes_a_schema_where_it_saves_and_submits(database_url, pool, analyst, tmp_path):
    from tests.integration.test_cli import llmjobs

    schema_file = tmp_path / "review.json"
    schema_file.write_text(json.dumps(REVIEW))
    saved = llmjobs(
        "templates",
        "save",
        "review",
        "Review {{plan}}",
        "--schema",
        str(schema_file),
        "--user",
        "ana",
    )
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout)["json_schema"] == REVIEW
    made = llmjobs(
        "agents",
        "create",
        "reviewer",
        "--model",
        "offline/echo",
        "--format",
        "json",
        "--schema",
        json.dumps(OTHER),
        "--user",
        "ana",
    )
    assert made.returncode == 0 and json.loads(made.stdout)["default_json_schema"] == OTHER
    rows = tmp_path / "plans.csv"
    rows.write_text("plan\nlaunch\nhiring\n")
    batch = llmjobs(
        "batch",
        "submit",
        str(rows),
        "--template-name",
        "review",
        "--model",
        "offline/echo",
        "--user",
        "ana",
    )
    assert batch.returncode == 0, batch.stderr
    assert json.loads(batch.stdout)["json_schema"] == REVIEW  # the version's
    compared = llmjobs(
        "compare",
        "submit",
        "--template",
        "Review",
        "--models",
        "offline/echo",
        "offline/brief",
        "--format",
        "json",
        "--schema",
        json.dumps(OTHER),
        "--user",
        "ana",
    )
    assert compared.returncode == 0, compared.stderr
    cid = json.loads(compared.stdout)["comparison_id"]
    shown = comparisons.get_comparison(pool, cid, analyst)
    assert shown.json_schema == OTHER and all(o.json_schema == OTHER for o in shown.outputs)


def test_the_cli_refuses_a_bad_schema_with_exit_2_and_writes_nothing(
    database_url, pool, analyst, tmp_path
):
    from tests.integration.test_cli import llmjobs

    rows = tmp_path / "plans.csv"
    rows.write_text("plan\nlaunch\n")
    bad = '{"type": "nope"}'
    commands = [
        ("templates", "save", "review", "Review", "--schema", bad),
        ("agents", "create", "r", "--model", "offline/echo", "--format", "json", "--schema", bad),
        (
            "batch",
            "submit",
            str(rows),
            "--template",
            "{{plan}}",
            "--model",
            "offline/echo",
            "--format",
            "json",
            "--schema",
            bad,
        ),
        (
            "compare",
            "submit",
            "--template",
            "x",
            "--models",
            "offline/echo",
            "offline/brief",
            "--format",
            "json",
            "--schema",
            bad,
        ),
        (
            "batch",
            "submit",
            str(rows),
            "--template",
            "{{plan}}",
            "--model",
            "offline/echo",
            "--format",
            "json",
            "--schema",
            str(tmp_path / "missing.json"),
        ),
    ]
    for command in commands:
        result = llmjobs(*command, "--user", "ana")
        assert result.returncode == 2, (command, result.stderr)
        assert "json_schema:" in result.stderr and result.stdout == ""
    for table in ("prompt_template_versions", "agents", "batches", "comparisons", "llm_outputs"):
        assert _count(pool, table) == 0, table


async def test_an_input_column_named_like_a_result_keeps_its_values(pool, analyst, run_worker):
    data = b"item,status,output\nchair,new,a\ntable,old,b\n"
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    batch = _batch(pool, analyst, data, "Review {{item}} ({{status}}, {{output}})", schema)
    await run_worker()
    header, *lines = list(csv.reader(io.StringIO(batches.results(pool, batch.id, analyst, "csv"))))
    table = [dict(zip(header, line, strict=True)) for line in lines]
    assert [(r["item"], r["input.status"], r["input.output"]) for r in table] == [
        ("chair", "new", "a"),
        ("table", "old", "b"),
    ]
    assert {r["status"] for r in table} == {"completed"}
    assert {r["ok"] for r in table} == {"true"}  # booleans as JSON writes them
    jsonl = batches.results(pool, batch.id, analyst, "jsonl").splitlines()
    assert [json.loads(line)["input.status"] for line in jsonl] == ["new", "old"]
