"""JSON Schemas on the dashboard's forms: a library template version (saved, shown, in What
changed), an agent's default, a batch's and a comparison's; a bad schema is said and nothing is
written."""

from __future__ import annotations

import json

from db import outputs as outputs_db
from tasks import agents, batches, templates

TEMPLATES = "dashboard/templates.py"
AGENTS = "dashboard/agents.py"
BATCHES = "dashboard/batches.py"
COMPARE = "dashboard/compare.py"
REVIEW = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "score": {"type": "integer"}},
    "required": ["summary", "score"],
}
OTHER = {"type": "object", "properties": {"verdict": {"type": "boolean"}}}
BAD = '{"type": "nope"}'


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def _count(pool, table: str) -> int:
    queries = {
        "llm_outputs": "SELECT count(*) AS n FROM llm_outputs",
        "batches": "SELECT count(*) AS n FROM batches",
        "agents": "SELECT count(*) AS n FROM agents",
        "prompt_template_versions": "SELECT count(*) AS n FROM prompt_template_versions",
    }
    with pool.connection() as conn:
        return conn.execute(queries[table]).fetchone()["n"]


def test_a_template_version_is_saved_shown_and_diffed_with_its_schema(app_as, pool, analyst):
    at = app_as(analyst, TEMPLATES)
    at.text_input(key="template_new_name").input("review")
    at.text_area(key="template_new_body").input("Review {{ plan }}")
    at.text_area(key="template_new_schema").input(json.dumps(REVIEW))
    at.button(key="template_new_save").click().run()
    assert not at.exception
    [v1] = templates.versions(pool, "review")
    assert v1.json_schema == REVIEW
    assert templates.schema_text(REVIEW).strip() in [c.value.strip() for c in at.code]
    assert at.text_area(key=f"template_edit_{v1.id}_schema").value == templates.schema_text(REVIEW)

    at.text_area(key=f"template_edit_{v1.id}_schema").input(json.dumps(OTHER))
    at.button(key="template_edit_save").click().run()
    assert not at.exception
    v2, _ = templates.versions(pool, "review")
    assert (v2.version, v2.body, v2.json_schema) == (2, v1.body, OTHER)
    [difference] = [c.value for c in at.code if c.language == "diff"]
    assert difference.strip() == templates.diff_versions(v1, v2).strip()
    assert "verdict" in difference


def test_a_bad_template_schema_is_said_and_nothing_is_saved(app_as, pool, analyst):
    at = app_as(analyst, TEMPLATES)
    at.text_input(key="template_new_name").input("review")
    at.text_area(key="template_new_body").input("Review {{ plan }}")
    at.text_area(key="template_new_schema").input(BAD)
    at.button(key="template_new_save").click().run()
    assert not at.exception
    assert "json_schema" in _texts(at.error) and "'nope' is not valid" in _texts(at.error)
    assert _count(pool, "prompt_template_versions") == 0


def test_an_agent_holds_a_default_schema_only_with_format_json(app_as, pool, analyst):
    at = app_as(analyst, AGENTS)
    at.text_input(key="agent_new_name").input("writer")
    at.selectbox(key="agent_new_model").set_value("offline/echo")
    at.text_area(key="agent_new_schema").input(json.dumps(REVIEW))
    at.button(key="agent_new_save").click().run()
    assert not at.exception
    assert "default format is text" in _texts(at.error)
    assert _count(pool, "agents") == 0

    at.selectbox(key="agent_new_format").set_value("json")
    at.button(key="agent_new_save").click().run()
    assert not at.exception
    [agent] = agents.list_agents(pool)
    assert (agent.default_format, agent.default_json_schema) == ("json", REVIEW)
    shown = at.text_area(key=f"agent_edit_{agent.id}_schema").value
    assert json.loads(shown) == REVIEW


def _upload(at, template: str):
    [uploader] = at.get("file_uploader")
    uploader.set_value(("plans.csv", b"plan\nlaunch\nhiring\n", "text/plain")).run()
    at.text_area(key="batch_template").input(template).run()
    return at


def test_a_batch_carries_its_schema_to_every_row(app_as, pool, analyst):
    at = _upload(app_as(analyst, BATCHES), "Review {{ plan }}")
    at.selectbox(key="batch_format").set_value("json").run()
    at.text_area(key="batch_schema").input(BAD)
    at.button(key="batch_submit").click().run()
    assert not at.exception
    assert "json_schema" in _texts(at.error)
    assert _count(pool, "batches") == 0 and _count(pool, "llm_outputs") == 0

    at.text_area(key="batch_schema").input(json.dumps(REVIEW))
    at.button(key="batch_submit").click().run()
    assert not at.exception
    [batch] = batches.list_batches(pool, analyst)
    assert batch.json_schema == REVIEW
    with pool.connection() as conn:
        rows = outputs_db.list_outputs(conn, batch_id=batch.id)
    assert len(rows) == 2 and all(r.json_schema == REVIEW for r in rows)


def test_a_library_version_with_a_schema_makes_a_json_batch(app_as, pool, analyst):
    templates.save_template(pool, analyst, "review", "Review {{ plan }}", "", REVIEW)
    at = _upload(app_as(analyst, BATCHES), "placeholder")
    at.selectbox(key="batch_library").set_value("review").run()
    assert not at.exception
    assert "carries a JSON Schema" in _texts(at.caption)
    at.button(key="batch_submit").click().run()
    assert not at.exception
    [batch] = batches.list_batches(pool, analyst)
    assert (batch.format, batch.json_schema) == ("json", REVIEW)


def test_a_comparison_gives_its_schema_to_every_answer(app_as, pool, analyst):
    at = app_as(analyst, COMPARE)
    at.text_area(key="compare_template").input("Review {{ plan }}").run()
    at.text_area(key="compare_var_plan").input("launch")
    at.multiselect(key="compare_models").set_value(["offline/echo", "offline/brief"])
    at.selectbox(key="compare_format").set_value("json").run()
    at.text_area(key="compare_schema").input(json.dumps(REVIEW))
    at.button(key="compare_submit").click().run()
    assert not at.exception
    with pool.connection() as conn:
        made = outputs_db.list_outputs(conn, user_id=analyst.id)
    assert len(made) == 2 and all(o.json_schema == REVIEW for o in made)
