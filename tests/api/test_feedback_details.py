"""Feedback with reasons, a comment and a corrected answer through the HTTP API: the change
answered, parts kept or cleared, the history, the reasons list (admins change it), the comment
search, and every bad input a 4xx naming the field, never a 5xx, with nothing written."""

from __future__ import annotations

import pytest

from tasks.feedback import MAX_COMMENT_CHARS, MAX_CORRECTED_CHARS, MAX_REASONS
from tasks.testing import create_test_llm_output

OUTPUTS = "/api/v1/llm_outputs"
REASONS = "/api/v1/feedback_reasons"


def _feedback(output_id: int) -> str:
    return f"{OUTPUTS}/{output_id}/feedback"


def _events(pool, output_id: int) -> int:
    with pool.connection() as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM feedback_events WHERE output_id = %s", (output_id,)
        ).fetchone()["n"]


def _field(response) -> str:
    assert 400 <= response.status_code < 500, response.text
    [error] = response.json()["detail"]
    return error["field"]


@pytest.fixture
def output(pool, analyst):
    return create_test_llm_output(pool, analyst)


def test_feedback_answers_the_change_and_keeps_the_parts_left_out(client, ana, pool, output):
    first = client.post(
        _feedback(output.id),
        headers=ana,
        json={
            "feedback": "thumbs_down",
            "reasons": ["Too  Long", "wrong"],
            "comment": "Rambles; the date is off.",
            "corrected_answer": "Paris, 1889.",
        },
    )
    assert first.status_code == 200, first.text
    change = first.json()
    assert (change["old_value"], change["new_value"]) == ("none", "thumbs_down")
    assert change["reasons"] == ["wrong", "too long"]  # the list's order, names normalised
    assert change["comment"] == "Rambles; the date is off."
    assert change["corrected_answer"] == "Paris, 1889."
    assert change["changed"] == ["feedback", "reasons", "comment", "corrected_answer"]
    assert change["user_name"] == "ana" and change["created_at"]

    # only the comment: the rest kept
    second = client.post(_feedback(output.id), headers=ana, json={"comment": "Just wrong."})
    assert second.status_code == 200, second.text
    assert second.json()["changed"] == ["comment"]
    shown = client.get(f"{OUTPUTS}/{output.id}", headers=ana).json()
    assert shown["feedback"] == "thumbs_down"
    assert shown["feedback_reasons"] == ["wrong", "too long"]
    assert shown["feedback_comment"] == "Just wrong."
    assert shown["corrected_answer"] == "Paris, 1889."

    # null and "" clear a text part; [] clears the reasons
    cleared = client.post(
        _feedback(output.id),
        headers=ana,
        json={"comment": None, "corrected_answer": "", "reasons": []},
    ).json()
    assert cleared["changed"] == ["reasons", "comment", "corrected_answer"]
    assert (cleared["comment"], cleared["corrected_answer"], cleared["reasons"]) == (None, None, [])
    assert cleared["new_value"] == "thumbs_down"

    history = client.get(f"{OUTPUTS}/{output.id}/feedback_events", headers=ana)
    assert history.status_code == 200
    events = history.json()
    assert [e["changed"] for e in events] == [
        ["feedback", "reasons", "comment", "corrected_answer"],
        ["comment"],
        ["reasons", "comment", "corrected_answer"],
    ]
    assert [e["comment"] for e in events] == ["Rambles; the date is off.", "Just wrong.", None]
    assert {e["user_name"] for e in events} == {"ana"}
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def test_thumbs_only_still_works_as_before(client, ana, output):
    answer = client.post(_feedback(output.id), headers=ana, json={"feedback": "thumbs_up"})
    assert answer.status_code == 200
    assert answer.json()["changed"] == ["feedback"] and answer.json()["reasons"] == []


def test_another_users_output_and_its_history_are_not_found(client, otto, ana, root, pool, output):
    refused = client.post(_feedback(output.id), headers=otto, json={"comment": "mine now"})
    assert refused.status_code == 404
    assert client.get(f"{OUTPUTS}/{output.id}/feedback_events", headers=otto).status_code == 404
    assert _events(pool, output.id) == 0
    # an admin may, and the owner sees who did
    by_admin = client.post(_feedback(output.id), headers=root, json={"reasons": ["great"]})
    assert by_admin.status_code == 200 and by_admin.json()["user_name"] == "root-admin"
    events = client.get(f"{OUTPUTS}/{output.id}/feedback_events", headers=ana).json()
    assert [e["user_name"] for e in events] == ["root-admin"]
    assert client.get(f"{OUTPUTS}/999999/feedback_events", headers=ana).status_code == 404


def test_only_completed_outputs_take_feedback(client, ana, pool, analyst):
    pending = create_test_llm_output(pool, analyst, status="pending")
    answer = client.post(_feedback(pending.id), headers=ana, json={"comment": "too early"})
    assert answer.status_code == 409 and "only completed outputs" in answer.json()["detail"]
    assert _events(pool, pending.id) == 0


HOSTILE = [
    ({}, "feedback"),
    ({"feedback": None}, "feedback"),
    ({"feedback": "meh"}, "feedback"),
    ({"reasons": ["wrong", "boring"]}, "reasons"),
    ({"reasons": ["wrong"] * (MAX_REASONS + 1)}, "reasons"),
    ({"reasons": "wrong"}, "reasons"),
    ({"reasons": [1]}, "reasons.0"),
    ({"reasons": [["wrong"]]}, "reasons.0"),
    ({"reasons": {"wrong": True}}, "reasons"),
    ({"reasons": ["wr\x00ong"]}, "reasons.0"),
    ({"reasons": ["x" * 10_000]}, "reasons"),
    ({"comment": "x" * (MAX_COMMENT_CHARS + 1)}, "comment"),
    ({"comment": "a\x00b"}, "comment"),
    ({"comment": 5}, "comment"),
    ({"comment": ["a"]}, "comment"),
    ({"corrected_answer": "y" * (MAX_CORRECTED_CHARS + 1)}, "corrected_answer"),
    ({"corrected_answer": "\x00"}, "corrected_answer"),
    ({"corrected_answer": {"a": 1}}, "corrected_answer"),
    ({"feedback": "thumbs_up", "extra": 1}, "extra"),
]


@pytest.mark.parametrize(("body", "field"), HOSTILE)
def test_bad_feedback_is_a_422_naming_the_field_and_writes_nothing(
    client, ana, pool, output, body, field
):
    answer = client.post(_feedback(output.id), headers=ana, json=body)
    assert answer.status_code == 422, answer.text
    assert _field(answer) == field
    assert _events(pool, output.id) == 0
    shown = client.get(f"{OUTPUTS}/{output.id}", headers=ana).json()
    assert (shown["feedback"], shown["feedback_reasons"], shown["feedback_comment"]) == (
        "none",
        [],
        None,
    )


def test_unknown_reason_is_named_with_the_choices(client, ana, output):
    answer = client.post(_feedback(output.id), headers=ana, json={"reasons": ["boring"]})
    message = answer.json()["detail"][0]["message"]
    assert "'boring'" in message and "wrong" in message and "great" in message


def test_raw_bodies_that_are_not_json_objects(client, ana, output):
    for text in ["[]", '"comment"', "null", "{", '{"comment": "\\ud800"}']:
        answer = client.post(
            _feedback(output.id),
            headers={**ana, "Content-Type": "application/json"},
            content=text,
        )
        assert 400 <= answer.status_code < 500, (text, answer.text)


def test_reasons_list_anyone_reads_admins_change(client, ana, root, pool, analyst):
    listed = client.get(REASONS, headers=ana)
    assert listed.status_code == 200
    assert [r["name"] for r in listed.json()][:2] == ["wrong", "incomplete"]

    assert client.put(f"{REASONS}/vague", headers=ana, json={}).status_code == 403
    assert client.delete(f"{REASONS}/wrong", headers=ana).status_code == 403

    added = client.put(f"{REASONS}/Vague", headers=root, json={"description": "says little"})
    assert added.status_code == 200, added.text
    assert added.json() == {"name": "vague", "description": "says little", "position": 7}
    moved = client.put(f"{REASONS}/vague", headers=root, json={"position": 0})
    assert moved.json() == {"name": "vague", "description": "says little", "position": 0}
    assert client.get(REASONS, headers=ana).json()[0]["name"] == "vague"

    # a removed reason stays on the outputs that have it, and can no longer be given
    output = create_test_llm_output(pool, analyst)
    client.post(_feedback(output.id), headers=ana, json={"reasons": ["vague"]})
    assert client.delete(f"{REASONS}/vague", headers=root).status_code == 204
    assert client.delete(f"{REASONS}/vague", headers=root).status_code == 404
    assert client.get(f"{OUTPUTS}/{output.id}", headers=ana).json()["feedback_reasons"] == ["vague"]
    again = client.post(_feedback(output.id), headers=ana, json={"reasons": ["vague"]})
    assert _field(again) == "reasons"


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("-dash", {}, "name"),
        ("semi;colon", {}, "name"),
        ("x" * 33, {}, "name"),
        ("x" * 101, {}, "name"),
        ("nul%00", {}, "name"),
        ("caf%C3%A9", {}, "name"),
        ("ok", {"description": "d" * 201}, "description"),
        ("ok", {"description": "a\x00"}, "description"),
        ("ok", {"description": 5}, "description"),
        ("ok", {"position": -1}, "position"),
        ("ok", {"position": 1001}, "position"),
        ("ok", {"position": "3"}, "position"),
        ("ok", {"position": 2.5}, "position"),
        ("ok", {"position": True}, "position"),
        ("ok", {"colour": "red"}, "colour"),
    ],
)
def test_bad_reason_changes_are_422_naming_the_field(client, root, name, body, field):
    before = client.get(REASONS, headers=root).json()
    answer = client.put(f"{REASONS}/{name}", headers=root, json=body)
    assert answer.status_code == 422, answer.text
    assert _field(answer) == field
    assert client.get(REASONS, headers=root).json() == before


def test_comment_search_keeps_to_the_viewers_outputs(
    client, ana, otto, root, pool, analyst, other_analyst
):
    mine = create_test_llm_output(pool, analyst)
    plain = create_test_llm_output(pool, analyst)
    theirs = create_test_llm_output(pool, other_analyst)
    client.post(_feedback(mine.id), headers=ana, json={"comment": "Off by 100% of the date"})
    client.post(_feedback(plain.id), headers=ana, json={"comment": "Off by 100 years"})
    client.post(_feedback(theirs.id), headers=otto, json={"comment": "off by 100% too"})

    def found(headers, text: str) -> list[int]:
        answer = client.get(OUTPUTS, headers=headers, params={"comment_contains": text})
        assert answer.status_code == 200, answer.text
        return [o["id"] for o in answer.json()["items"]]

    assert found(ana, "OFF BY") == [plain.id, mine.id]
    assert found(ana, "100%") == [mine.id]  # % is a plain character
    assert found(ana, "1_0") == []  # and so is _
    assert found(otto, "100%") == [theirs.id]
    assert found(root, "100%") == [theirs.id, mine.id]
    too_long = client.get(OUTPUTS, headers=ana, params={"comment_contains": "x" * 201})
    assert _field(too_long) == "comment_contains"
    nul = client.get(OUTPUTS, headers=ana, params={"comment_contains": "a\x00"})
    assert _field(nul) == "comment_contains"


def test_comment_search_pages_with_the_cursor(client, ana, pool, analyst):
    made = [create_test_llm_output(pool, analyst) for _ in range(3)]
    for output in made:
        client.post(_feedback(output.id), headers=ana, json={"comment": "needs work"})
    first = client.get(OUTPUTS, headers=ana, params={"comment_contains": "work", "limit": 2})
    page = first.json()
    assert [o["id"] for o in page["items"]] == [made[2].id, made[1].id]
    second = client.get(
        OUTPUTS,
        headers=ana,
        params={"comment_contains": "work", "limit": 2, "cursor": page["next_cursor"]},
    ).json()
    assert [o["id"] for o in second["items"]] == [made[0].id]
    assert second["next_cursor"] is None


def test_reason_bodies_that_are_not_objects_and_missing_tokens(client, root, ana, output):
    before = client.get(REASONS, headers=root).json()
    for text in ["[]", '"vague"', "5", "{", '{"description": "\\ud800"}']:
        answer = client.put(
            f"{REASONS}/vague",
            headers={**root, "Content-Type": "application/json"},
            content=text,
        )
        assert answer.status_code == 422, (text, answer.text)
        assert _field(answer) in ("body", "description")
    assert client.get(REASONS, headers=root).json() == before
    assert client.get(REASONS).status_code == 401
    assert client.put(f"{REASONS}/vague", json={}).status_code == 401
    assert client.delete(f"{REASONS}/wrong").status_code == 401
    assert client.get(f"{OUTPUTS}/{output.id}/feedback_events").status_code == 401
    assert _field(client.get(f"{OUTPUTS}/0/feedback_events", headers=ana)) == "output_id"
    huge = client.post(_feedback(output.id), headers=ana, json={"reasons": ["wrong"] * 100_000})
    assert huge.status_code == 413


VALUES = [None, True, 0, -1, 2**70, 1.5, "", " ", "wrong", [], [None], ["wrong", 1], {}, {"a": []}]


def test_any_json_value_in_any_part_is_never_a_5xx(client, ana, root, pool, output):
    for part in ("feedback", "reasons", "comment", "corrected_answer"):
        for value in VALUES:
            answer = client.post(_feedback(output.id), headers=ana, json={part: value})
            assert answer.status_code < 500, (part, value, answer.text)
            if answer.status_code != 200:
                assert answer.status_code == 422 and _field(answer).split(".")[0] in (
                    part,
                    "feedback",  # nothing given
                ), (part, value, answer.text)
    for part in ("description", "position"):
        for value in VALUES:
            answer = client.put(f"{REASONS}/probe", headers=root, json={part: value})
            assert answer.status_code < 500, (part, value, answer.text)
            if answer.status_code != 200:
                assert _field(answer) == part, (part, value, answer.text)


def test_the_history_takes_a_bounded_limit(client, ana, output):
    for n in range(3):
        client.post(_feedback(output.id), headers=ana, json={"comment": f"take {n}"})
    path = f"{OUTPUTS}/{output.id}/feedback_events"
    latest = client.get(path, headers=ana, params={"limit": 2}).json()
    assert [e["comment"] for e in latest] == ["take 1", "take 2"]
    for bad in ("0", "1001", "x"):
        assert _field(client.get(path, headers=ana, params={"limit": bad})) == "limit"
