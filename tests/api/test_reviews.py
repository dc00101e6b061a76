"""Review queues over HTTP: make, list, take the next item, review and skip, progress and
agreement; hostile input gets a 4xx naming the field and writes nothing; another user's queue is
a 404."""

from __future__ import annotations

import pytest

from tasks import accounts
from tasks.testing import create_test_llm_output
from tests.api.conftest import bearer

QUEUES = "/api/v1/review_queues"


def _count(pool, table: str) -> int:
    with pool.connection() as conn:
        return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


def _fields(response) -> list[str]:
    assert response.status_code == 422, response.text
    return [e["field"] for e in response.json()["detail"]]


@pytest.fixture
def outputs(pool, analyst):
    return [
        create_test_llm_output(pool, analyst, model="offline/secret", raw_response=f"Answer {n}").id
        for n in range(3)
    ]


def test_a_reviewer_makes_a_queue_and_reviews_it(client, ana, outputs):
    made = client.post(QUEUES, headers=ana, json={"name": "Week 12", "only": "unrated"})
    assert made.status_code == 201, made.text
    queue = made.json()
    assert (queue["items"], queue["reviewed"], queue["capped"]) == (3, 0, False)
    assert queue["scope"] == {"only": "unrated"} and queue["owner"] == "ana"
    assert [q["id"] for q in client.get(QUEUES, headers=ana).json()] == [queue["id"]]

    item = client.post(f"{QUEUES}/{queue['id']}/next", headers=ana)
    assert item.status_code == 200, item.text
    body = item.json()
    assert body["output_id"] == outputs[0] and body["position"] == 1
    assert body["answer"] == "Answer 0" and body["format"] == "text"
    assert body["model"] == "offline/secret" and body["reserved_until"]
    assert body["context"] == {"concept": "recursion"}
    # asking again gives the item held
    assert client.post(f"{QUEUES}/{queue['id']}/next", headers=ana).json() == body

    reviewed = client.post(
        f"{QUEUES}/{queue['id']}/items/{outputs[0]}",
        headers=ana,
        json={"feedback": "thumbs_down", "reasons": ["wrong"], "comment": "Off by one"},
    )
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["feedback"] == "thumbs_down" and reviewed.json()["reasons"] == ["wrong"]
    output = client.get(f"/api/v1/llm_outputs/{outputs[0]}", headers=ana).json()
    assert output["feedback"] == "thumbs_down"

    skipped = client.post(
        f"{QUEUES}/{queue['id']}/items/{outputs[1]}", headers=ana, json={"skip": True}
    )
    assert skipped.status_code == 200 and skipped.json()["skipped"] is True
    status = client.get(f"{QUEUES}/{queue['id']}", headers=ana).json()
    assert status["progress"]["summary"] == "1 of 3 reviewed"
    assert (status["progress"]["mine"], status["progress"]["skipped"]) == (1, 1)
    assert status["agreement"] is None

    last = client.post(f"{QUEUES}/{queue['id']}/next", headers=ana).json()
    assert last["output_id"] == outputs[2]
    client.post(
        f"{QUEUES}/{queue['id']}/items/{outputs[2]}", headers=ana, json={"feedback": "thumbs_up"}
    )
    done = client.post(f"{QUEUES}/{queue['id']}/next", headers=ana)
    assert done.status_code == 204 and done.content == b""


def test_a_blind_queue_hides_the_model_and_cost(client, ana, outputs):
    queue = client.post(QUEUES, headers=ana, json={"name": "Blind", "blind": True}).json()
    item = client.post(f"{QUEUES}/{queue['id']}/next", headers=ana)
    assert item.json()["model"] is None and item.json()["cost"] is None
    assert "offline/secret" not in item.text
    scoped = client.post(
        QUEUES, headers=ana, json={"name": "Blind", "blind": True, "model": "offline/secret"}
    )
    assert scoped.status_code == 201 and "offline/secret" not in scoped.text
    assert "offline/secret" not in client.get(QUEUES, headers=ana).text
    assert "offline/secret" not in client.get(f"{QUEUES}/{scoped.json()['id']}", headers=ana).text


def test_agreement_with_two_reviewers(client, ana, root, outputs, pool, token_of):
    queue = client.post(QUEUES, headers=ana, json={"name": "Pairs", "reviewers_per_item": 2}).json()
    for headers, thumbs in ((ana, "thumbs_up"), (root, "thumbs_down")):
        item = client.post(f"{QUEUES}/{queue['id']}/next", headers=headers).json()
        assert item["output_id"] == outputs[0]
        client.post(
            f"{QUEUES}/{queue['id']}/items/{outputs[0]}", headers=headers, json={"feedback": thumbs}
        )
    agreement = client.get(f"{QUEUES}/{queue['id']}", headers=ana).json()["agreement"]
    assert agreement == {
        "items": 1,
        "unanimous": 0,
        "unanimous_share": 0.0,
        "pairs": 1,
        "agreeing_pairs": 0,
        "pairwise": 0.0,
    }
    # fully reviewed: a third reviewer who does not hold it is refused, nothing changed
    third = bearer(token_of(accounts.create_user(pool, "root-two", admin=True)))
    refused = client.post(
        f"{QUEUES}/{queue['id']}/items/{outputs[0]}", headers=third, json={"feedback": "thumbs_up"}
    )
    assert refused.status_code == 409 and "already has the 2 reviews" in refused.json()["detail"]
    assert (
        client.post(f"{QUEUES}/{queue['id']}/next", headers=third).json()["output_id"]
        == (outputs[1])
    )
    # a reviewer may change their own review: now both thumbs agree
    again = client.post(
        f"{QUEUES}/{queue['id']}/items/{outputs[0]}", headers=root, json={"feedback": "thumbs_up"}
    )
    assert again.status_code == 200
    assert client.get(f"{QUEUES}/{queue['id']}", headers=ana).json()["agreement"]["unanimous"] == 1


def test_another_users_queue_is_not_found_and_unchanged(client, ana, otto, pool, outputs):
    queue = client.post(QUEUES, headers=ana, json={"name": "Mine"}).json()
    qid = queue["id"]
    for method, path, body in (
        ("GET", f"{QUEUES}/{qid}", None),
        ("POST", f"{QUEUES}/{qid}/next", None),
        ("POST", f"{QUEUES}/{qid}/items/{outputs[0]}", {"feedback": "thumbs_up"}),
        ("POST", f"{QUEUES}/{qid}/items/{outputs[0]}", {"skip": True}),
        ("GET", f"{QUEUES}/999999", None),
    ):
        response = client.request(method, path, headers=otto, json=body)
        assert response.status_code == 404, (path, response.text)
        assert "not found" in response.json()["detail"]
    assert client.get(QUEUES, headers=otto).json() == []
    assert _count(pool, "review_reservations") == 0
    assert _count(pool, "review_marks") == 0
    assert _count(pool, "feedback_events") == 0
    assert client.get(QUEUES).status_code == 401


def test_an_empty_scope_is_refused_naming_it(client, ana, pool, outputs):
    response = client.post(QUEUES, headers=ana, json={"name": "None", "model": "openai/nothing"})
    assert _fields(response) == ["scope"]
    assert "no completed output" in response.json()["detail"][0]["message"]
    assert _count(pool, "review_queues") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": 7}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "x" * 1_000}, "name"),
        ({"name": "q", "model": "has spaces"}, "model"),
        ({"name": "q", "model": ["offline/echo"]}, "model"),
        ({"name": "q", "template_version_id": "7"}, "template_version_id"),
        ({"name": "q", "template_version_id": 0}, "template_version_id"),
        ({"name": "q", "batch_id": 2**64}, "batch_id"),
        ({"name": "q", "since": "yesterday"}, "since"),
        ({"name": "q", "since": "2025-01-01T00:00:00"}, "since"),
        ({"name": "q", "since": "2025-02-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"}, "until"),
        ({"name": "q", "only": "thumbs_up"}, "only"),
        ({"name": "q", "blind": "true"}, "blind"),
        ({"name": "q", "reviewers_per_item": 6}, "reviewers_per_item"),
        ({"name": "q", "reviewers_per_item": "2"}, "reviewers_per_item"),
        ({"name": "q", "reviewers_per_item": True}, "reviewers_per_item"),
        ({"name": "q", "template": "T" * 100_001}, "template"),
        ({"name": "q", "owner_id": 1}, "owner_id"),
    ],
)
def test_bad_queues_are_refused_naming_the_field(client, ana, pool, outputs, body, field):
    assert _fields(client.post(QUEUES, headers=ana, json=body)) == [field]
    assert _count(pool, "review_queues") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"feedback": "great"}, "feedback"),
        ({"feedback": 1}, "feedback"),
        ({"reasons": "wrong"}, "reasons"),
        ({"reasons": ["unheard of"]}, "reasons"),
        ({"reasons": ["wrong"] * 11}, "reasons"),
        ({"reasons": [["wrong"]]}, "reasons.0"),
        ({"comment": "c" * 2_001}, "comment"),
        ({"comment": "nul\x00"}, "comment"),
        ({"corrected_answer": "a" * 50_001}, "corrected_answer"),
        ({"skip": "yes"}, "skip"),
        ({"skip": True, "feedback": "thumbs_up"}, "skip"),
        ({}, "feedback"),
        ({"thumbs": "up"}, "thumbs"),
    ],
)
def test_bad_reviews_are_refused_naming_the_field(client, ana, pool, outputs, body, field):
    queue = client.post(QUEUES, headers=ana, json={"name": "Q"}).json()
    client.post(f"{QUEUES}/{queue['id']}/next", headers=ana)
    path = f"{QUEUES}/{queue['id']}/items/{outputs[0]}"
    assert _fields(client.post(path, headers=ana, json=body)) == [field]
    assert _count(pool, "review_marks") == 0
    assert _count(pool, "feedback_events") == 0
    assert _count(pool, "review_reservations") == 1


def test_hostile_paths_and_bodies(client, ana, pool, outputs, analyst):
    queue = client.post(QUEUES, headers=ana, json={"name": "Q"}).json()
    assert _fields(client.post(f"{QUEUES}/0/next", headers=ana)) == ["queue_id"]
    assert _fields(client.post(f"{QUEUES}/abc/next", headers=ana)) == ["queue_id"]
    assert _fields(client.get(f"{QUEUES}/{2**63}", headers=ana)) == ["queue_id"]
    path = f"{QUEUES}/{queue['id']}/items/{2**63}"
    assert _fields(client.post(path, headers=ana, json={"skip": True})) == ["output_id"]
    huge = client.post(
        f"{QUEUES}/{queue['id']}/items/{outputs[0]}",
        headers=ana,
        json={"comment": "x" * 300_000},
    )
    assert huge.status_code == 413
    broken = client.post(
        QUEUES, headers={**ana, "Content-Type": "application/json"}, content=b'{"name": '
    )
    assert broken.status_code == 422
    listed = client.post(QUEUES, headers=ana, json=["name"])
    assert listed.status_code == 422
    outside = create_test_llm_output(pool, analyst).id
    missing = client.post(
        f"{QUEUES}/{queue['id']}/items/{outside}", headers=ana, json={"feedback": "thumbs_up"}
    )
    assert missing.status_code == 404
    assert _count(pool, "review_marks") == 0
