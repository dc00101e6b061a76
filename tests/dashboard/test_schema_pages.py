"""JSON Schemas on the pages: Submit offers a schema editor for a json answer only, checks what is
typed (nothing said before), refuses a bad schema without writing and sends a good one; Output
shows the schema and whether the answer is valid against it, or what broke it."""

from __future__ import annotations

import json
import re

from psycopg.types.json import Jsonb

from tasks import outputs as jobs
from tasks.llm import schemas
from tasks.llm.schemas import MAX_SCHEMA_DEPTH
from tasks.testing import create_test_llm_output

DETAIL = "dashboard/output_detail.py"
SCHEMA = "submit_json_schema"
GOOD = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "risks": {"type": "array"}},
    "required": ["summary"],
}


def _shown(elements) -> str:
    """The elements' text as a person reads it (markdown's escapes taken out)."""
    return " ".join(re.sub(r"\\(.)", r"\1", str(e.value)) for e in elements)


def _rows(pool) -> int:
    with pool.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM llm_outputs").fetchone()["n"]


def _ready_for_json(at) -> None:
    """A template filled in and the json format chosen: only the schema is left to decide."""
    at.text_area(key="submit_var_concept").input("recursion").run()
    at.selectbox(key="submit_format").set_value("json").run()


def _schema_editors(at) -> list:
    return [t for t in at.text_area if t.key == SCHEMA]


def test_the_schema_editor_is_for_json_only_and_silent_until_typed_into(app_as, analyst):
    at = app_as(analyst)
    assert not at.exception and not at.error and not at.success
    assert _schema_editors(at) == []
    at.selectbox(key="submit_format").set_value("json").run()
    [editor] = _schema_editors(at)
    assert editor.label == "JSON Schema (optional)"
    assert '"required": ["summary"]' in editor.placeholder
    assert not at.error and not at.success
    at.selectbox(key="submit_format").set_value("markdown").run()
    assert _schema_editors(at) == []


def test_no_schema_is_checked_before_one_is_typed(app_as, analyst, monkeypatch):
    """The validator is loaded only for a schema typed (the page's first run stays fast)."""
    checked = []
    monkeypatch.setattr(schemas, "check_schema", lambda schema, *a: checked.append(schema) or {})
    at = app_as(analyst)
    _ready_for_json(at)
    assert checked == []
    at.text_area(key=SCHEMA).input('{"type": "object"}').run()
    assert checked == ['{"type": "object"}']


def test_a_valid_schema_is_said_so_with_what_it_asks_for(app_as, analyst):
    at = app_as(analyst)
    _ready_for_json(at)
    at.text_area(key=SCHEMA).input(json.dumps(GOOD)).run()
    assert not at.error
    assert _shown(at.success) == "Valid JSON Schema: an object with summary (required), risks"
    at.text_area(key=SCHEMA).input('{"type": "array", "items": {"type": "string"}}').run()
    assert _shown(at.success) == "Valid JSON Schema: a list of texts"


def test_a_bad_schema_is_explained_and_submit_writes_nothing(app_as, pool, analyst):
    at = app_as(analyst)
    _ready_for_json(at)
    deep = '{"items":' * 40 + "{}" + "}" * 40
    for typed, words in (
        ('{"type": "strin"}', "$.type: 'strin' is not valid under any of the given schemas"),
        ("[1]", 'a JSON Schema is a JSON object, such as {"type": "object"}'),
        (deep, f"nested more than {MAX_SCHEMA_DEPTH} levels"),
        ('{"type": ', "not valid JSON"),
    ):
        at.text_area(key=SCHEMA).input(typed).run()
        assert not at.exception
        [error] = at.error
        shown = _shown([error])
        assert shown.startswith("Not a valid JSON Schema: ") and words in shown
        assert "json_schema" not in shown
        assert not at.success
        at.button(key="submit_button").click().run()
        assert not at.exception
        assert _shown(at.error) == shown  # said once, next to the editor
        assert _rows(pool) == 0
        assert "submit_following" not in at.session_state


def test_a_good_schema_is_stored_on_the_output(app_as, pool, analyst):
    at = app_as(analyst)
    _ready_for_json(at)
    at.text_area(key=SCHEMA).input(json.dumps(GOOD, indent=2)).run()
    at.button(key="submit_button").click().run()
    assert not at.exception and not at.error
    output = jobs.get_output(pool, at.session_state["submit_following"], analyst)
    assert (output.format, output.json_schema) == ("json", GOOD)


def test_a_schema_left_behind_by_a_change_of_format_is_not_sent(app_as, pool, analyst):
    at = app_as(analyst)
    _ready_for_json(at)
    at.text_area(key=SCHEMA).input(json.dumps(GOOD)).run()
    at.selectbox(key="submit_format").set_value("text").run()
    at.button(key="submit_button").click().run()
    assert not at.exception and not at.error
    output = jobs.get_output(pool, at.session_state["submit_following"], analyst)
    assert (output.format, output.json_schema) == ("text", None)


def _json_output(
    pool, user, *, status: str, valid: bool | None, first_try: bool | None, errors=None, **kw
):
    """A json output carrying GOOD as its schema, with how its answer fared against it."""
    output = create_test_llm_output(pool, user, format="json", status=status, **kw)
    with pool.connection() as conn:
        conn.execute(
            "UPDATE llm_outputs SET json_schema = %s, schema_valid = %s, schema_first_try = %s, "
            "schema_errors = %s WHERE id = %s",
            (Jsonb(GOOD), valid, first_try, Jsonb(errors) if errors else None, output.id),
        )
    return output


def _schema_shown(at) -> bool:
    return any(e.label == "JSON Schema" for e in at.expander)


def test_a_valid_answer_is_marked_and_its_schema_shown(app_as, pool, analyst):
    answer = '{"summary": "fine"}'
    output = _json_output(
        pool,
        analyst,
        status="completed",
        valid=True,
        first_try=True,
        raw_response=answer,
        parsed_output={"summary": "fine"},
    )
    at = app_as(analyst, DETAIL, id=str(output.id))
    assert not at.exception
    marks = _shown(at.markdown)
    assert "Valid against its JSON Schema" in marks and "re-ask" not in marks
    assert _schema_shown(at)
    assert GOOD in [json.loads(j.value) for j in at.json]


def test_a_valid_answer_after_a_re_ask_says_so(app_as, pool, analyst):
    output = _json_output(
        pool,
        analyst,
        status="completed",
        valid=True,
        first_try=False,
        raw_response='{"summary": "fine"}',
        parsed_output={"summary": "fine"},
    )
    at = app_as(analyst, DETAIL, id=str(output.id))
    assert not at.exception
    assert "Valid against its JSON Schema after a re-ask" in _shown(at.markdown)


def test_a_failed_answer_lists_the_schema_errors_by_path_and_keeps_the_raw_answer(
    app_as, pool, analyst
):
    wrong = '{"summary": 3, "risks": "none"}'
    message = (
        "the answer does not match its JSON Schema: $.summary: 3 is not of type 'string'; "
        "$.risks: 'none' is not of type 'array'; $: 'score' is a required property"
    )
    output = _json_output(
        pool,
        analyst,
        status="failed",
        valid=False,
        first_try=False,
        raw_response=wrong,
        error_message=message,
        errors=[
            {"path": "$.summary", "message": "3 is not of type 'string'"},
            {"path": "$.risks", "message": "'none' is not of type 'array'"},
            {"path": "$", "message": "'score' is a required property"},
        ],
    )
    at = app_as(analyst, DETAIL, id=str(output.id))
    assert not at.exception
    [error] = at.error
    lines = _shown([error]).splitlines()
    assert lines == [
        "The answer does not match its JSON Schema:",
        "- $.summary: 3 is not of type 'string'",
        "- $.risks: 'none' is not of type 'array'",
        "- $: 'score' is a required property",
    ]
    assert wrong in [c.value for c in at.code]
    assert "Valid against" not in _shown(at.markdown)
    assert _schema_shown(at)


def test_an_output_without_a_schema_shows_no_schema(app_as, pool, analyst):
    output = create_test_llm_output(
        pool, analyst, format="json", raw_response='{"a": 1}', parsed_output={"a": 1}
    )
    at = app_as(analyst, DETAIL, id=str(output.id))
    assert not at.exception
    assert not _schema_shown(at)
    assert "JSON Schema" not in _shown(at.markdown) + _shown(at.caption)
