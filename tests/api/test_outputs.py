"""Reading outputs (filters, cursor pages), feedback, re-run and regenerate over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks.testing import create_test_llm_output

OUTPUTS = "/api/v1/llm_outputs"


def ids(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_list_filters(client, ana, pool, analyst):
    done = create_test_llm_output(
        pool,
        analyst,
        format="json",
        raw_response='{"a": 1}',
        parsed_output={"a": 1},
        feedback="thumbs_up",
    )
    failed = create_test_llm_output(pool, analyst, status="failed", template="Other {{concept}}")
    pending = create_test_llm_output(pool, analyst, status="pending", model="offline/echo")

    assert ids(client.get(OUTPUTS, headers=ana)) == [pending.id, failed.id, done.id]
    assert ids(client.get(OUTPUTS, headers=ana, params={"status": "failed"})) == [failed.id]
    assert ids(client.get(OUTPUTS, headers=ana, params={"format": "json"})) == [done.id]
    assert ids(client.get(OUTPUTS, headers=ana, params={"feedback": "thumbs_up"})) == [done.id]
    params = {"template": "Other {{concept}}"}
    assert ids(client.get(OUTPUTS, headers=ana, params=params)) == [failed.id]
    assert ids(client.get(OUTPUTS, headers=ana, params={"model": "nope/x"})) == []
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert ids(client.get(OUTPUTS, headers=ana, params={"created_after": later})) == []
    assert len(ids(client.get(OUTPUTS, headers=ana, params={"created_before": later}))) == 3

    item = client.get(OUTPUTS, headers=ana, params={"format": "json"}).json()["items"][0]
    assert item["parsed_output"] == {"a": 1} and item["user_name"] == "ana"
    assert item["cost"] is None and item["kind"] == "original"


def test_cursor_walks_every_output_once(client, ana, pool, analyst):
    made = [create_test_llm_output(pool, analyst).id for _ in range(7)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(OUTPUTS, headers=ana, params=params).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(made, reverse=True)
    assert pages == 3


def test_bad_paging_is_422(client, ana):
    for params, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "YmVmb3JlOi0x"}, "cursor"),  # a negative id
        ({"status": "done"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"model": "a\x00b"}, "model"),
        ({"colour": "red"}, "colour"),
    ]:
        response = client.get(OUTPUTS, headers=ana, params=params)
        assert response.status_code == 422, (params, response.text)
        assert [e["field"] for e in response.json()["detail"]] == [field]


def test_get_one(client, ana, pool, analyst):
    output = create_test_llm_output(pool, analyst, raw_response="An answer.")
    body = client.get(f"{OUTPUTS}/{output.id}", headers=ana).json()
    assert body["id"] == output.id and body["raw_response"] == "An answer."
    assert client.get(f"{OUTPUTS}/{output.id + 1000}", headers=ana).status_code == 404
    assert client.get(f"{OUTPUTS}/abc", headers=ana).status_code == 422
    assert client.get(f"{OUTPUTS}/{2**70}", headers=ana).status_code == 422


def test_feedback(client, ana, pool, analyst):
    done = create_test_llm_output(pool, analyst)
    pending = create_test_llm_output(pool, analyst, status="pending")
    url = f"{OUTPUTS}/{done.id}/feedback"

    response = client.post(url, headers=ana, json={"feedback": "thumbs_down"})
    assert response.status_code == 200
    assert response.json()["old_value"] == "none"
    assert response.json()["new_value"] == "thumbs_down"
    response = client.post(url, headers=ana, json={"feedback": "none"})
    assert (response.json()["old_value"], response.json()["new_value"]) == ("thumbs_down", "none")
    assert client.get(f"{OUTPUTS}/{done.id}", headers=ana).json()["feedback"] == "none"

    conflict = client.post(
        f"{OUTPUTS}/{pending.id}/feedback", headers=ana, json={"feedback": "thumbs_up"}
    )
    assert conflict.status_code == 409 and "pending" in conflict.json()["detail"]
    invalid = client.post(url, headers=ana, json={"feedback": "meh"})
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["field"] == "feedback"


def test_re_run_and_regenerate(client, ana, pool, analyst, queued_jobs):
    original = create_test_llm_output(pool, analyst, context={"concept": "recursion"})

    re_run = client.post(f"{OUTPUTS}/{original.id}/re_run", headers=ana)
    regenerated = client.post(
        f"{OUTPUTS}/{original.id}/regenerate",
        headers=ana,
        json={"new_context": {"concept": "loops"}, "new_format": "html"},
    )
    bare = client.post(f"{OUTPUTS}/{original.id}/regenerate", headers=ana)

    assert [r.status_code for r in (re_run, regenerated, bare)] == [202, 202, 202]
    assert all(r.json()["status"] == "queued" for r in (re_run, regenerated, bare))
    jobs = {job["output_id"]: job for job in queued_jobs()}
    first = client.get(f"{OUTPUTS}/{re_run.json()['output_id']}", headers=ana).json()
    second = client.get(f"{OUTPUTS}/{regenerated.json()['output_id']}", headers=ana).json()
    assert (first["kind"], first["parent_id"], first["context"]) == (
        "re_run",
        original.id,
        {"concept": "recursion"},
    )
    assert (second["kind"], second["parent_id"], second["format"]) == (
        "regenerate",
        original.id,
        "html",
    )
    assert jobs[second["id"]]["context"] == {"concept": "loops"}

    invalid = client.post(
        f"{OUTPUTS}/{original.id}/regenerate", headers=ana, json={"new_model": "offline/unknown"}
    )
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["field"] == "model"
    assert client.post(f"{OUTPUTS}/999/re_run", headers=ana).status_code == 404
    assert len(queued_jobs()) == 3


def test_models(client, ana):
    response = client.get("/api/v1/models", headers=ana)
    assert response.status_code == 200
    assert {"name": "offline/echo", "provider": "offline", "offline": True} in response.json()
    offline = [m["name"] for m in response.json() if m["offline"]]
    assert offline[:4] == ["offline/echo", "offline/brief", "offline/verbose", "offline/flaky"]
