"""Hostile input through the HTTP API: deep JSON and costly templates get a 422 naming the field
and the limit, never a 5xx, and nothing is written."""

from __future__ import annotations

import pytest

from tasks.llm import sandbox
from tasks.llm.rendering import MAX_CONTEXT_DEPTH

JOBS = "/api/v1/llm_jobs"
DEPTHS = [MAX_CONTEXT_DEPTH, MAX_CONTEXT_DEPTH + 1, 300, 985, 10_000]


def deep_json(levels: int) -> str:
    """The JSON text of an object nested `levels` deep, written without recursion."""
    return '{"a":' * (levels - 1) + '{"a":"x"' + "}" * levels


def _post(client, headers, path: str, text: str):
    return client.post(path, headers={**headers, "Content-Type": "application/json"}, content=text)


def _count_outputs(pool) -> int:
    with pool.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM llm_outputs").fetchone()["n"]


def _expect(response, levels: int, field: str):
    if levels <= MAX_CONTEXT_DEPTH:
        assert response.status_code == 202, response.text
        return
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    # Past what any JSON parser will read the body is refused as a whole.
    assert error["field"] in (field, "body")
    assert f"at most {MAX_CONTEXT_DEPTH} levels" in error["message"]
    if levels < 900:
        assert error["field"] == field


@pytest.mark.parametrize("levels", DEPTHS)
def test_job_context_depth(client, ana, pool, levels):
    text = '{"template": "T {{a}}", "model": "offline/echo", "context": ' + deep_json(levels) + "}"
    _expect(_post(client, ana, JOBS, text), levels, "context")
    assert _count_outputs(pool) == (1 if levels <= MAX_CONTEXT_DEPTH else 0)


@pytest.mark.parametrize("levels", DEPTHS)
def test_regenerate_context_depth(client, ana, pool, levels):
    first = client.post(
        JOBS,
        headers=ana,
        json={"template": "T {{a}}", "model": "offline/echo", "context": {"a": 1}},
    )
    path = f"/api/v1/llm_outputs/{first.json()['output_id']}/regenerate"
    _expect(
        _post(client, ana, path, '{"new_context": ' + deep_json(levels) + "}"),
        levels,
        "new_context",
    )
    assert _count_outputs(pool) == (2 if levels <= MAX_CONTEXT_DEPTH else 1)


@pytest.mark.parametrize("levels", DEPTHS)
def test_batch_row_depth(client, ana, pool, levels):
    rows = '[{"a": 1}, ' + deep_json(levels) + "]"
    text = '{"template": "T {{a}}", "model": "offline/echo", "rows": ' + rows + "}"
    response = _post(client, ana, "/api/v1/batches", text)
    if levels <= MAX_CONTEXT_DEPTH:
        assert response.status_code == 202, response.text
        return
    _expect(response, levels, "rows")
    if levels < 900:
        assert response.json()["detail"][0]["message"].startswith("row 2: ")
    assert _count_outputs(pool) == 0


@pytest.mark.parametrize("levels", DEPTHS)
def test_comparison_context_depth(client, ana, pool, levels):
    text = (
        '{"template": "T {{a}}", "models": ["offline/echo", "openai/m"], "context": '
        + deep_json(levels)
        + "}"
    )
    response = _post(client, ana, "/api/v1/comparisons", text)
    if levels <= MAX_CONTEXT_DEPTH:
        assert response.status_code < 500, response.text
        return
    _expect(response, levels, "context")
    assert _count_outputs(pool) == 0


@pytest.mark.parametrize(
    "template",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x",
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "{{ range(100000)|join|length }}{% for i in range(1000) %}{{ range(100000)|list }}"
        "{% endfor %}",
        "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s|length }}",
    ],
)
def test_costly_templates_are_refused_and_nothing_is_written(client, ana, pool, template):
    body = {"template": template, "model": "offline/echo"}
    for path, extra in [(JOBS, {"context": {}}), ("/api/v1/batches", {"rows": [{}]})]:
        response = client.post(path, headers=ana, json={**body, **extra})
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert "template too expensive" in error["message"]
        assert error["field"] in ("template", "rows[1].template")
    assert _count_outputs(pool) == 0


COSTLY = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{{a}}"
NUMBERS = "a\n" + "".join(f"{n}\n" for n in range(400))


def test_a_costly_template_refuses_a_batch_at_its_first_row(client, ana, pool, renders):
    body = {"template": COSTLY, "model": "offline/echo", "csv": NUMBERS}
    response = client.post("/api/v1/batches", headers=ana, json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["field"] == "rows[1].template"
    assert error["message"].startswith("template too expensive: ")
    assert f"(limit {sandbox.MAX_STEPS})" in error["message"]
    assert len(renders) == 1
    assert _count_outputs(pool) == 0


def test_a_batch_past_the_batch_budget_is_refused(client, ana, pool, renders, monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_BATCH_STEPS", 10 * sandbox.MAX_STEPS)
    template = "{% for i in range(" + str(sandbox.MAX_STEPS // 2) + ") %}{% endfor %}{{a}}"
    body = {"template": template, "model": "offline/echo", "csv": NUMBERS}
    response = client.post("/api/v1/batches", headers=ana, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {
            "field": "template",
            "message": "template too expensive for a batch of 400 rows: more than 1000000 steps"
            " across its rows (limit 1000000)",
        }
    ]
    assert len(renders) == 20
    assert _count_outputs(pool) == 0


def test_the_rows_a_refused_batch_lists_are_capped(client, ana, pool):
    body = {"template": "{{b}}", "model": "offline/echo", "csv": NUMBERS}
    response = client.post("/api/v1/batches", headers=ana, json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert [e["field"] for e in detail[:-1]] == [f"rows[{n}].context" for n in range(1, 21)]
    assert detail[-1] == {"field": "rows", "message": "and 380 more rows"}
    assert len(response.content) < 3000
    assert _count_outputs(pool) == 0


def test_a_csv_naming_a_column_twice_is_refused(client, ana, pool):
    body = {"template": "{{a}}", "model": "offline/echo", "csv": "a,a\n1,2\n"}
    response = client.post("/api/v1/batches", headers=ana, json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["field"] == "csv" and "column 'a' more than once" in error["message"]
    assert _count_outputs(pool) == 0
