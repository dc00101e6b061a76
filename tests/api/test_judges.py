"""The judge endpoints: admins define, change, delete and run judges (403 for analysts), everyone
reads them; every bad input is a 4xx naming the field, nothing written; verdicts and calibration
show the caller's own outputs (admins: everyone's); a run queues ordinary jobs of the admin."""

from __future__ import annotations

import pytest

from tasks import feedback, judges
from tasks import outputs as jobs

JUDGES = "/api/v1/judges"


def _fields(response) -> list[str]:
    return [entry["field"] for entry in response.json()["detail"]]


def _judge(client, root, **body):
    response = client.post(
        JUDGES, headers=root, json={"name": "strict", "model": "offline/echo", **body}
    )
    assert response.status_code == 201, response.text
    return response.json()


def _count_judges(pool) -> int:
    with pool.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM judges").fetchone()["n"]


def test_admins_define_change_and_delete_judges_and_analysts_read_them(client, root, ana):
    judge = _judge(client, root)
    assert judge["rubric"] == judges.DEFAULT_RUBRIC and judge["created_by_name"] == "root-admin"
    assert [j["name"] for j in client.get(JUDGES, headers=ana).json()] == ["strict"]
    one = client.get(f"{JUDGES}/{judge['id']}", headers=ana).json()
    assert one["verdicts"] == {"pass": 0, "fail": 0, "no verdict": 0, "waiting": 0}

    changed = client.put(f"{JUDGES}/{judge['id']}", headers=root, json={"rubric": "{{ answer }}"})
    assert changed.status_code == 200 and changed.json()["rubric"] == "{{ answer }}"
    assert changed.json()["name"] == "strict"
    assert client.delete(f"{JUDGES}/{judge['id']}", headers=root).status_code == 204
    assert client.get(f"{JUDGES}/{judge['id']}", headers=root).status_code == 404
    assert client.delete(f"{JUDGES}/{judge['id']}", headers=root).status_code == 404


def test_analysts_are_refused_every_change_and_run(client, root, ana, pool):
    judge = _judge(client, root)
    path = f"{JUDGES}/{judge['id']}"
    assert (
        client.post(JUDGES, headers=ana, json={"name": "x", "model": "offline/echo"}).status_code
        == 403
    )
    assert client.put(path, headers=ana, json={"name": "y"}).status_code == 403
    assert client.delete(path, headers=ana).status_code == 403
    refused = client.post(f"{path}/runs", headers=ana, json={})
    assert refused.status_code == 403 and "admins" in refused.json()["detail"]
    assert client.get(path, headers=root).json()["judge"]["name"] == "strict"
    assert _count_judges(pool) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "j", "model": "offline/echo", "rubric": "{% if %}"}, "rubric"),
        ({"name": "j", "model": "offline/echo", "rubric": "{{ secret }}"}, "rubric"),
        ({"name": "j", "model": "offline/echo", "rubric": "x" * 20_001}, "rubric"),
        ({"name": "j", "model": "offline/echo", "rubric": 5}, "rubric"),
        ({"name": "j\u0000", "model": "offline/echo"}, "name"),
        ({"name": "x" * 101, "model": "offline/echo"}, "name"),
        ({"name": "  ", "model": "offline/echo"}, "name"),
        ({"name": "j", "model": "offline/nope"}, "model"),
        ({"name": "j", "model": "no such model"}, "model"),
        ({"name": "j"}, "model"),
        ({"name": "j", "model": "offline/echo", "extra": 1}, "extra"),
        ({"name": ["j"], "model": "offline/echo"}, "name"),
    ],
)
def test_a_bad_judge_is_a_422_naming_the_field_and_writes_nothing(client, root, pool, body, field):
    response = client.post(JUDGES, headers=root, json=body)
    assert response.status_code == 422, response.text
    assert field in _fields(response)
    assert _count_judges(pool) == 0


def test_a_syntax_error_in_the_rubric_says_where(client, root):
    response = client.post(
        JUDGES,
        headers=root,
        json={"name": "j", "model": "offline/echo", "rubric": "ok\n{{ answer "},
    )
    [entry] = response.json()["detail"]
    assert entry["field"] == "rubric" and "line 2" in entry["message"]


def test_a_name_taken_is_refused_on_create_and_change(client, root):
    _judge(client, root)
    other = _judge(client, root, name="kind")
    assert _fields(
        client.post(JUDGES, headers=root, json={"name": "strict", "model": "offline/echo"})
    ) == ["name"]
    response = client.put(f"{JUDGES}/{other['id']}", headers=root, json={"name": "strict"})
    assert response.status_code == 422 and _fields(response) == ["name"]


@pytest.mark.parametrize(
    ("path", "method"),
    [
        (f"{JUDGES}/0", "get"),
        (f"{JUDGES}/-1", "get"),
        (f"{JUDGES}/{2**63}", "get"),
        (f"{JUDGES}/abc", "get"),
        (f"{JUDGES}/0/verdicts", "get"),
        (f"{JUDGES}/0/calibration", "get"),
    ],
)
def test_a_bad_judge_id_is_a_422_naming_it(client, ana, path, method):
    response = getattr(client, method)(path, headers=ana)
    assert response.status_code == 422 and "judge_id" in _fields(response)


def test_a_missing_judge_is_a_404_everywhere(client, root, ana):
    for method, path, body in [
        ("get", f"{JUDGES}/999", None),
        ("get", f"{JUDGES}/999/verdicts", None),
        ("get", f"{JUDGES}/999/calibration", None),
        ("put", f"{JUDGES}/999", {"name": "x"}),
        ("post", f"{JUDGES}/999/runs", {}),
    ]:
        kwargs = {"json": body} if body is not None else {}
        assert client.request(method, path, headers=root, **kwargs).status_code == 404, path


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"queue": "urgent"}, "queue"),
        ({"again": "maybe"}, "again"),
        ({"scope": {"model": "bad model"}}, "model"),
        ({"scope": {"user_id": 0}}, "scope.user_id"),
        ({"scope": {"batch_id": -3}}, "scope.batch_id"),
        ({"scope": {"created_after": "yesterday"}}, "scope.created_after"),
        ({"scope": {"template_name": "nope"}}, "template_name"),
        ({"scope": {"template_version": 2}}, "template_version"),
        ({"scope": {"template": "a", "template_name": "b"}}, "template"),
        ({"scope": {"rated_only": True, "colour": "red"}}, "scope.colour"),
        ({"scope": {"model": "a\u0000b"}}, "scope.model"),
        (
            {
                "scope": {
                    "created_after": "2026-02-01T00:00:00Z",
                    "created_before": "2026-01-01T00:00:00Z",
                }
            },
            "created_before",
        ),
    ],
)
def test_a_bad_run_is_a_422_naming_the_field_and_queues_nothing(
    client, root, pool, queued_jobs, body, field
):
    judge = _judge(client, root)
    response = client.post(f"{JUDGES}/{judge['id']}/runs", headers=root, json=body)
    assert response.status_code == 422, response.text
    assert field in _fields(response)
    assert queued_jobs() == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("before_id=0", "before_id"),
        ("outcome=meh", "outcome"),
    ],
)
def test_a_bad_verdict_page_is_a_422_naming_the_field(client, root, query, field):
    judge = _judge(client, root)
    response = client.get(f"{JUDGES}/{judge['id']}/verdicts?{query}", headers=root)
    assert response.status_code == 422 and field in _fields(response)


def _completed(pool, user, word, thumb=None):
    output_id = jobs.submit(
        pool, user=user, template="Say {{w}}", context={"w": word}, model="offline/echo"
    ).output_id
    with pool.connection() as conn:
        conn.execute(
            "UPDATE llm_outputs SET status = 'completed', prompt = %s, raw_response = %s,"
            " started_at = now(), completed_at = now() WHERE id = %s",
            (f"Say {word}", word, output_id),
        )
    if thumb:
        feedback.set_feedback(pool, output_id, user, thumb)
    return output_id


def test_a_run_queues_the_admins_jobs_and_verdicts_page_per_viewer(
    client, root, ana, otto, analyst, other_analyst, pool, queued_jobs, admin
):
    mine = [_completed(pool, analyst, f"w{i}", "thumbs_up") for i in range(3)]
    theirs = _completed(pool, other_analyst, "x")
    judge = _judge(client, root)
    before = len(queued_jobs())
    run = client.post(
        f"{JUDGES}/{judge['id']}/runs", headers=root, json={"scope": {"rated_only": True}}
    )
    assert run.status_code == 202, run.text
    body = run.json()
    assert (body["queued"], body["capped"], body["queue"]) == (3, False, "low")
    assert sorted(body["output_ids"]) == sorted(mine) and theirs not in body["output_ids"]
    added = queued_jobs()[before:]
    assert len(added) == 3 and {j["queue_name"] for j in added} == {"low"}

    path = f"{JUDGES}/{judge['id']}/verdicts"
    first = client.get(f"{path}?limit=2", headers=ana).json()
    assert [v["output_id"] for v in first["items"]] == sorted(mine, reverse=True)[:2]
    assert {v["outcome"] for v in first["items"]} == {"waiting"}
    assert {(v["judge_name"], v["judge_model"]) for v in first["items"]} == {
        (judge["name"], judge["model"])
    }
    rest = client.get(f"{path}?limit=2&before_id={first['next_before_id']}", headers=ana).json()
    assert [v["output_id"] for v in rest["items"]] == [min(mine)] and rest["next_before_id"] is None
    assert client.get(path, headers=otto).json() == {"items": [], "next_before_id": None}
    calibration = client.get(f"{JUDGES}/{judge['id']}/calibration", headers=ana).json()
    assert calibration["overall"]["count"] == 0
    assert calibration["overall"]["kappa"] is None and calibration["overall"]["kappa_note"]
    # judged already: the same run queues nothing and says why
    again = client.post(
        f"{JUDGES}/{judge['id']}/runs", headers=root, json={"scope": {"rated_only": True}}
    )
    assert again.json()["queued"] == 0 and "already judged" in again.json()["message"]


def _give_verdicts(pool, judge_id: int, verdicts: dict[int, str]) -> None:
    """The judge's jobs answered: output id → pass or fail."""
    with pool.connection() as conn:
        for output_id, verdict in verdicts.items():
            conn.execute(
                "UPDATE llm_outputs SET status = 'completed', schema_valid = true,"
                " parsed_output = jsonb_build_object('verdict', %s::text, 'reason', 'r'),"
                " raw_response = '{}', started_at = now(), completed_at = now()"
                " WHERE id = (SELECT judge_output_id FROM judge_verdicts"
                "             WHERE judge_id = %s AND output_id = %s)",
                (verdict, judge_id, output_id),
            )


def test_the_leaderboard_ranks_by_a_judge_or_both_and_names_a_bad_choice(
    client, root, ana, analyst, pool
):
    liked = [_completed(pool, analyst, f"l{i}", "thumbs_up") for i in range(2)]
    judge = _judge(client, root)
    run = client.post(f"{JUDGES}/{judge['id']}/runs", headers=root, json={"scope": {}})
    assert run.status_code == 202 and run.json()["queued"] == 2
    _give_verdicts(pool, judge["id"], {liked[0]: "pass", liked[1]: "fail"})

    board = client.get(
        f"/api/v1/leaderboard?judge_id={judge['id']}&rank_by=judge", headers=ana
    ).json()
    (entry,) = [e for e in board["entries"] if e["model"] == "offline/echo"]
    assert (entry["judge_pass"], entry["judge_fail"], entry["judge_pass_rate"]) == (1, 1, 0.5)
    assert entry["thumbs_up"] == 2  # people's thumbs, apart from the verdicts
    both = client.get(f"/api/v1/leaderboard?judge_id={judge['id']}&rank_by=both", headers=ana)
    assert both.status_code == 200
    for query, field in (("rank_by=judge", "judge_id"), ("rank_by=best", "rank_by")):
        refused = client.get(f"/api/v1/leaderboard?{query}", headers=ana)
        assert refused.status_code == 422 and field in refused.text
