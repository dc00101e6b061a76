"""The per-user rate limit on job creation and Idempotency-Key, both kept in Postgres."""

from __future__ import annotations

import threading
import time

import pytest

from api import idempotency
from tasks import outputs as jobs
from tasks.errors import InvalidInput
from tasks.testing import create_test_llm_output
from tests.api.conftest import EXAMPLE_JOB

JOBS = "/api/v1/llm_jobs"


@pytest.fixture
def limit_of(monkeypatch, open_client):
    """limit_of(n): a client of an app started with LLMJOBS_API_RATE_LIMIT=n."""

    def start(per_minute: int):
        monkeypatch.setenv(idempotency.RATE_LIMIT_ENV, str(per_minute))
        return open_client()

    return start


def test_rate_limit_answers_429_with_retry_after(limit_of, ana, otto, pool, analyst, queued_jobs):
    client = limit_of(3)
    output = create_test_llm_output(pool, analyst)
    invalid = client.post(JOBS, headers=ana, json={**EXAMPLE_JOB, "model": "offline/none"})
    assert invalid.status_code == 422  # refused requests are not counted
    answers = [
        client.post(JOBS, headers=ana, json=EXAMPLE_JOB),
        client.post(f"/api/v1/llm_outputs/{output.id}/re_run", headers=ana),
        client.post(f"/api/v1/llm_outputs/{output.id}/regenerate", headers=ana, json={}),
        client.post(JOBS, headers=ana, json=EXAMPLE_JOB),
        client.post(f"/api/v1/llm_outputs/{output.id}/re_run", headers=ana),
    ]

    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
    refused = answers[3]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "3 jobs per minute" in refused.json()["detail"]
    assert len(queued_jobs()) == 3
    # Reads are not limited, and the limit is per user.
    assert client.get("/api/v1/llm_outputs", headers=ana).status_code == 200
    assert client.post(JOBS, headers=otto, json=EXAMPLE_JOB).status_code == 202


def test_rate_limit_is_shared_by_api_processes(limit_of, ana):
    first, second = limit_of(2), limit_of(2)  # two apps, two pools: like two processes
    assert first.post(JOBS, headers=ana, json=EXAMPLE_JOB).status_code == 202
    assert second.post(JOBS, headers=ana, json=EXAMPLE_JOB).status_code == 202
    assert first.post(JOBS, headers=ana, json=EXAMPLE_JOB).status_code == 429
    assert second.post(JOBS, headers=ana, json=EXAMPLE_JOB).status_code == 429


def _post_at_once(clients: list, headers: dict, each: int = 4) -> list:
    """POST the example job `each` times through every client, all released at the same moment
    (one thread per request); the answers."""
    start = threading.Barrier(len(clients) * each)
    answers: list = []

    def send(client) -> None:
        start.wait()
        answers.append(client.post(JOBS, headers=headers, json=EXAMPLE_JOB))

    threads = [threading.Thread(target=send, args=(c,)) for c in clients for _ in range(each)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return answers


def test_rate_limit_holds_under_concurrency(limit_of, ana, queued_jobs):
    clients = [limit_of(3), limit_of(3)]  # two apps, two pools: like two processes
    answers = _post_at_once(clients, ana)
    assert sorted(a.status_code for a in answers) == [202] * 3 + [429] * 5
    assert len(queued_jobs()) == 3


def test_zero_turns_the_limit_off(limit_of, ana):
    client = limit_of(0)
    assert {client.post(JOBS, headers=ana, json=EXAMPLE_JOB).status_code for _ in range(5)} == {202}


def test_malformed_limit_stops_start_up(monkeypatch):
    from api.app import create_app

    monkeypatch.setenv(idempotency.RATE_LIMIT_ENV, "sixty")
    with pytest.raises(ValueError, match="LLMJOBS_API_RATE_LIMIT"):
        create_app()


def _submit(pool, user, template="Hi"):
    return lambda conn: jobs.submit_on(conn, user=user, template=template, model="offline/echo")


def test_window_opens_again_after_it_ends(pool, analyst, queued_jobs):
    def attempt():
        return idempotency.create_job(
            pool,
            analyst,
            _submit(pool, analyst),
            operation="test",
            body=None,
            rate_limit=2,
            window_seconds=1,
        )

    attempt(), attempt()
    with pytest.raises(idempotency.RateLimited) as refused:
        attempt()
    assert refused.value.retry_after == 1
    time.sleep(1.05)
    assert attempt().replayed is False
    assert len(queued_jobs()) == 3


def test_same_key_replays_the_first_answer(client, ana, queued_jobs):
    headers = {**ana, "Idempotency-Key": "order-42"}
    first = client.post(JOBS, headers=headers, json=EXAMPLE_JOB)
    again = client.post(JOBS, headers=headers, json=EXAMPLE_JOB)

    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(queued_jobs()) == 1

    different = client.post(JOBS, headers=headers, json={**EXAMPLE_JOB, "format": "text"})
    assert different.status_code == 422
    [error] = different.json()["detail"]
    assert error["field"] == "Idempotency-Key" and "different request" in error["message"]
    assert len(queued_jobs()) == 1


def test_keys_are_per_user_and_per_operation(client, ana, otto, pool, analyst, queued_jobs):
    output = create_test_llm_output(pool, analyst)
    assert client.post(JOBS, headers={**ana, "Idempotency-Key": "k"}, json=EXAMPLE_JOB)
    mine_again = client.post(
        f"/api/v1/llm_outputs/{output.id}/re_run", headers={**ana, "Idempotency-Key": "k"}
    )
    assert mine_again.status_code == 422  # same key, another operation
    theirs = client.post(JOBS, headers={**otto, "Idempotency-Key": "k"}, json=EXAMPLE_JOB)
    assert theirs.status_code == 202 and "Idempotent-Replayed" not in theirs.headers
    assert len(queued_jobs()) == 2


def test_refused_request_leaves_the_key_unused(client, ana, queued_jobs):
    headers = {**ana, "Idempotency-Key": "retry-me"}
    bad = client.post(JOBS, headers=headers, json={**EXAMPLE_JOB, "context": {}})
    assert bad.status_code == 422
    fixed = client.post(JOBS, headers=headers, json=EXAMPLE_JOB)
    assert fixed.status_code == 202 and "Idempotent-Replayed" not in fixed.headers
    assert len(queued_jobs()) == 1


def test_replays_do_not_count_against_the_limit(limit_of, ana, queued_jobs):
    client = limit_of(1)
    headers = {**ana, "Idempotency-Key": "once"}
    answers = [client.post(JOBS, headers=headers, json=EXAMPLE_JOB) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert client.post(JOBS, headers=ana, json=EXAMPLE_JOB).status_code == 429
    assert len(queued_jobs()) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "naïve"])
def test_malformed_keys_are_422(client, ana, key):
    headers = {**ana, "Idempotency-Key": key.encode("utf-8")}
    response = client.post(JOBS, headers=headers, json=EXAMPLE_JOB)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"field": "Idempotency-Key", "message": "must be 1 to 255 visible ASCII characters"}
    ]


def test_key_check_in_the_use_case():
    assert idempotency.check_idempotency_key("a-B_9.~") == "a-B_9.~"
    with pytest.raises(InvalidInput, match="Idempotency-Key"):
        idempotency.check_idempotency_key("tab\there")


def test_concurrent_identical_requests_queue_one_job(open_client, ana, queued_jobs):
    # Two apps (two pools) so that the requests truly run at once, as from two API processes.
    clients = [open_client(), open_client()]
    answers = _post_at_once(clients, {**ana, "Idempotency-Key": "double-click"})
    assert [a.status_code for a in answers] == [202] * 8
    assert len({a.text for a in answers}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in answers) == 1
    assert len(queued_jobs()) == 1


def _short_lived(pool, user, key):
    """A job creation under an idempotency key kept for one second."""
    return idempotency.create_job(
        pool,
        user,
        _submit(pool, user),
        operation="test",
        body={"n": 1},
        idempotency_key=key,
        key_ttl_seconds=1,
    )


def test_key_is_forgotten_after_its_time(pool, analyst, queued_jobs):
    def attempt():
        return _short_lived(pool, analyst, "short-lived")

    first = attempt()
    assert attempt().replayed is True
    time.sleep(1.05)
    later = attempt()
    assert later.replayed is False
    assert later.submission.output_id != first.submission.output_id
    assert len(queued_jobs()) == 2


def test_concurrent_repeats_of_an_expired_key_queue_one_new_job(pool, analyst, queued_jobs):
    def attempt():
        return _short_lived(pool, analyst, "expires")

    first = attempt()
    time.sleep(1.05)
    start = threading.Barrier(4)  # the test pool holds 4 connections
    results: list = []

    def repeat() -> None:
        start.wait()
        results.append(attempt())

    threads = [threading.Thread(target=repeat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(results) == 4 and sum(not r.replayed for r in results) == 1
    assert len({r.submission.output_id for r in results}) == 1
    assert results[0].submission.output_id != first.submission.output_id
    assert len(queued_jobs()) == 2


def test_claiming_a_key_forgets_the_users_expired_keys(pool, analyst, other_analyst):
    def attempt(user, key):
        idempotency.create_job(
            pool,
            user,
            _submit(pool, user),
            operation="test",
            body=None,
            idempotency_key=key,
            key_ttl_seconds=1,
        )

    attempt(analyst, "old"), attempt(other_analyst, "theirs")
    time.sleep(1.05)
    attempt(analyst, "new")

    with pool.connection() as conn:
        kept = conn.execute("SELECT user_id, key FROM api_idempotency_keys ORDER BY key").fetchall()
    assert [(k["user_id"], k["key"]) for k in kept] == [
        (analyst.id, "new"),
        (other_analyst.id, "theirs"),  # another user's keys wait for that user's next claim
    ]
