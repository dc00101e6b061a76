"""Provider limits through the HTTP API: admins read, set and remove them; anyone else gets a
403; hostile bodies and queries get a 422 naming the field, and nothing is written."""

from __future__ import annotations

import json

import pytest

from tasks import limits
from tasks import outputs as jobs
from tasks.config import LLM_TASK
from tests.api.test_hostile_input import deep_json

LIMITS = "/api/v1/limits"


def _written(pool) -> list[str]:
    return [limit.pattern for limit in limits.list_limits(pool)]


def test_admin_sets_reads_and_clears_a_limit(client, root, pool):
    made = client.put(LIMITS, headers=root, json={"model": "openai/", "rpm": 50, "concurrent": 4})
    assert made.status_code == 200, made.text
    limit = made.json()
    assert limit.pop("updated_at")
    assert limit == {
        "pattern": "openai/",
        "rpm": 50,
        "tpm": None,
        "concurrent": 4,
        "source": "admin",
        "updated_by": "root-admin",
    }
    # A PUT replaces every cap: those it leaves out are gone.
    again = client.put(LIMITS, headers=root, json={"model": " openai/ ", "tpm": 30000})
    assert (again.json()["rpm"], again.json()["tpm"], again.json()["concurrent"]) == (
        None,
        30000,
        None,
    )
    client.put(LIMITS, headers=root, json={"model": "anthropic/claude-3", "concurrent": 2})

    listed = client.get(LIMITS, headers=root)
    assert listed.status_code == 200, listed.text
    assert [(lim["pattern"], lim["tpm"], lim["concurrent"]) for lim in listed.json()["limits"]] == [
        ("anthropic/claude-3", None, 2),
        ("openai/", 30000, None),
    ]
    assert listed.json()["models"] == []

    gone = client.delete(LIMITS, headers=root, params={"model": "openai/"})
    assert gone.status_code == 204 and gone.content == b""
    assert _written(pool) == ["anthropic/claude-3"]
    missing = client.delete(LIMITS, headers=root, params={"model": "openai/"})
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no limit on 'openai/'"}


def test_the_use_of_a_limited_model(client, root, pool, analyst):
    assert client.put(LIMITS, headers=root, json={"model": "offline/", "rpm": 1}).status_code == 200
    ids = [
        jobs.submit(pool, user=analyst, template="Hi {{n}}", context={"n": n}, model="offline/echo")
        for n in range(2)
    ]
    with pool.connection() as conn:
        # One request a minute: the first job is taken, the second waits.
        worker = conn.execute("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
        [taken] = conn.execute(
            "SELECT (j.job).id FROM llmjobs_fetch_jobs(NULL, %s, 2, %s) AS j",
            (worker.fetchone()["id"], LLM_TASK),
        ).fetchall()
        assert taken["id"] == ids[0].job_id
        conn.execute(  # what the worker does with the job it took
            "UPDATE llm_outputs SET status = 'processing' WHERE id = %s", (ids[0].output_id,)
        )
        # the provider answers 429: every worker leaves the model alone for ten minutes
        conn.execute("SELECT llmjobs_pause_model('offline/echo', 600)")

    answer = client.get(LIMITS, headers=root)
    assert answer.status_code == 200, answer.text
    [use] = answer.json()["models"]
    assert use.pop("tokens_last_minute") > 0
    assert use.pop("paused_until") is not None
    assert use == {
        "model": "offline/echo",
        "pattern": "offline/",
        "requests_last_minute": 1,
        "in_flight": 1,
        "waiting": 1,
        "rate_limited_last_hour": 1,
        "waits_for": "paused",
        "reason": "paused after the provider answered 429",
    }


def test_only_admins_reach_the_limits(client, root, ana, pool):
    client.put(LIMITS, headers=root, json={"model": "openai/", "rpm": 5})
    refused = [
        client.get(LIMITS, headers=ana),
        client.put(LIMITS, headers=ana, json={"model": "openai/", "rpm": 7}),
        client.put(LIMITS, headers=ana, json={"model": "a b", "rpm": "x", "extra": 1}),
        client.delete(LIMITS, headers=ana, params={"model": "openai/"}),
        client.delete(LIMITS, headers=ana),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert {r.json()["detail"] for r in refused} == {"admins only"}
    unsigned = [client.get(LIMITS), client.put(LIMITS, json={"model": "openai/", "rpm": 7})]
    assert [r.status_code for r in unsigned] == [401, 401]
    assert [(lim.pattern, lim.rpm) for lim in limits.list_limits(pool)] == [("openai/", 5)]

    documented = client.get("/openapi.json").json()["paths"][LIMITS]
    assert sorted(documented) == ["delete", "get", "put"]
    assert all("403" in operation["responses"] for operation in documented.values())
    assert "422" in documented["put"]["responses"] and "404" in documented["delete"]["responses"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"model": "openai/", "rpm": "12"}, "rpm", "valid integer"),
        ({"model": "openai/", "rpm": 1.5}, "rpm", "valid integer"),
        ({"model": "openai/", "rpm": 5.0}, "rpm", "valid integer"),
        ({"model": "openai/", "rpm": True}, "rpm", "valid integer"),
        ({"model": "openai/", "rpm": [5]}, "rpm", "valid integer"),
        ({"model": "openai/", "rpm": {"n": 5}}, "rpm", "valid integer"),
        ({"model": "openai/", "rpm": 0}, "rpm", "greater than or equal to 1"),
        ({"model": "openai/", "tpm": -5}, "tpm", "greater than or equal to 1"),
        ({"model": "openai/", "concurrent": 10**30}, "concurrent", "less than or equal to 100000"),
        ({"model": "openai/", "rpm": 5, "tpm": 10**10}, "tpm", "less than or equal to 1000000000"),
        ({"model": "openai/"}, "rpm", "give at least one of rpm, tpm and concurrent"),
        ({"model": "openai/", "rpm": None, "tpm": None}, "rpm", "give at least one"),
        ({"model": "openai/", "rpm": 5, "burst": 2}, "burst", "Extra inputs are not permitted"),
        ({"model": "openai/", "rpm": 5, "x": {"a": [{"b": None}]}}, "x", "Extra inputs"),
        ({"model": {"name": ["openai/"]}, "rpm": 5}, "model", "valid string"),
        ({"model": ["openai/"], "rpm": 5}, "model", "valid string"),
        ({"model": 5, "rpm": 5}, "model", "valid string"),
        ({"model": None, "rpm": 5}, "model", "valid string"),
        ({"rpm": 5}, "model", "Field required"),
        ({"model": "x" * 5000, "rpm": 5}, "model", "at most 200 characters"),
        ({"model": "open ai/", "rpm": 5}, "model", "must be a model name"),
        ({"model": "openai/*", "rpm": 5}, "model", "must be a model name"),
        ({"model": "openai/\u0000", "rpm": 5}, "model", "NUL"),
        ({"model": "openai/\ngpt", "rpm": 5}, "model", "must be a model name"),
        ({"model": "  ", "rpm": 5}, "model", "is empty"),
        # as sent, not as a JSON encoder would write them
        ("[]", "body", "valid dictionary"),
        ('"openai/"', "body", "valid dictionary"),
        ('{"model": "openai/", "rpm": 5', "body", "is not valid JSON"),
        ('{"model": "\\ud800", "rpm": 5}', "model", "unicode"),
        ('{"model": "openai/", "rpm": 1' + "0" * 5000 + "}", "body", "JSON"),
        ('{"model": "openai/", "rpm": ' + deep_json(40) + "}", "rpm", "valid integer"),
        ('{"model": "openai/", "rpm": ' + deep_json(10_000) + "}", "body", "nested"),
    ],
)
def test_hostile_bodies_are_refused_naming_the_field(client, root, pool, body, field, words):
    text = body if isinstance(body, str) else json.dumps(body)
    headers = {**root, "Content-Type": "application/json"}
    answer = client.put(LIMITS, headers=headers, content=text)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["field"] == field
    assert words in error["message"]
    assert _written(pool) == []


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({}, "Field required"),
        ({"model": ""}, "give a model's name or a prefix ending in /"),
        ({"model": "open ai/"}, "must be a model name"),
        ({"model": "openai/*"}, "must be a model name"),
        ({"model": "x" * 201}, "at most 200 characters"),
    ],
)
def test_hostile_removals_are_refused_naming_the_field(client, root, pool, params, words):
    client.put(LIMITS, headers=root, json={"model": "openai/", "rpm": 5})
    answer = client.delete(LIMITS, headers=root, params=params)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["field"] == "model" and words in error["message"]
    assert _written(pool) == ["openai/"]
