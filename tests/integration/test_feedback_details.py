"""Feedback that explains itself, as the use-cases do it: reasons from the list, a comment and a
corrected answer, kept or cleared part by part, each change an event; refusals name the part and
write nothing; the reasons list under admins, its cap held by concurrent admins; the comment
search within the viewer's outputs; the pytest plugin's feedback details."""

from __future__ import annotations

import threading

import pytest

from tasks import feedback
from tasks import outputs as jobs
from tasks.errors import Conflict, Forbidden, InvalidInput, NotFound
from tasks.testing import create_test_llm_output


def _events(pool, output_id: int) -> int:
    with pool.connection() as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM feedback_events WHERE output_id = %s", (output_id,)
        ).fetchone()["n"]


def _names(pool) -> list[str]:
    return [r.name for r in feedback.list_reasons(pool)]


def test_parts_are_kept_or_cleared_and_each_change_is_an_event(pool, analyst):
    output = create_test_llm_output(pool, analyst)
    first = feedback.set_feedback(
        pool,
        output.id,
        analyst,
        "thumbs_down",
        reasons=["incomplete", "WRONG", "wrong"],
        comment="Misses the base case",
        corrected_answer="A function that calls itself until a base case stops it.",
    )
    assert first.reasons == ["wrong", "incomplete"]  # once each, in the list's order
    assert (first.user_id, first.user_name) == (analyst.id, analyst.name)
    assert first.changed == ["feedback", "reasons", "comment", "corrected_answer"]

    second = feedback.set_feedback(pool, output.id, analyst, reasons=["great"])
    assert second.changed == ["reasons"]
    assert (second.new_value, second.comment) == ("thumbs_down", "Misses the base case")

    third = feedback.set_feedback(pool, output.id, analyst, comment="  ", corrected_answer=None)
    assert third.changed == ["comment", "corrected_answer"]
    assert (third.comment, third.corrected_answer, third.reasons) == (None, None, ["great"])

    same = feedback.set_feedback(pool, output.id, analyst, "thumbs_down")
    assert same.changed == ["feedback"]  # thumbs given count as a change, even the same ones

    events = feedback.feedback_events(pool, output.id, analyst)
    assert [e.changed for e in events] == [
        ["feedback", "reasons", "comment", "corrected_answer"],
        ["reasons"],
        ["comment", "corrected_answer"],
        ["feedback"],
    ]
    assert [e.user_name for e in events] == ["ana"] * 4
    assert events[0].created_at <= events[-1].created_at
    shown = jobs.get_output(pool, output.id, analyst)
    assert (shown.feedback, shown.feedback_reasons, shown.feedback_comment) == (
        "thumbs_down",
        ["great"],
        None,
    )


@pytest.mark.parametrize(
    ("parts", "field", "message"),
    [
        ({}, "feedback", "give feedback, reasons, a comment or a corrected answer"),
        ({"feedback": "meh"}, "feedback", "must be one of"),
        ({"reasons": ["wrong", "boring"]}, "reasons", "unknown reason 'boring'"),
        ({"reasons": ["wrong"] * 11}, "reasons", "at most 10 reasons"),
        ({"reasons": "wrong"}, "reasons", "must be a list"),
        ({"reasons": [None]}, "reasons", "each reason must be text"),
        ({"comment": "a\x00b"}, "comment", "must not contain NUL"),
        ({"comment": "x" * 2_001}, "comment", "at most 2,000 characters"),
        ({"comment": 12}, "comment", "must be text"),
        ({"corrected_answer": "\x00"}, "corrected_answer", "must not contain NUL"),
        ({"corrected_answer": "y" * 50_001}, "corrected_answer", "at most 50,000"),
    ],
)
def test_bad_parts_are_refused_by_name_and_write_nothing(pool, analyst, parts, field, message):
    output = create_test_llm_output(pool, analyst, comment="before")
    # the other parts are fine: nothing is half-written
    extra = {"comment": "after"} if "comment" not in parts and parts else {}
    with pytest.raises(InvalidInput) as refused:
        feedback.set_feedback(pool, output.id, analyst, **parts, **extra)
    assert refused.value.field == field and message in refused.value.message
    assert _events(pool, output.id) == 0
    assert jobs.get_output(pool, output.id, analyst).feedback_comment == "before"


def test_only_completed_outputs_take_feedback(pool, analyst):
    for status in ("pending", "failed"):
        output = create_test_llm_output(pool, analyst, status=status)
        with pytest.raises(Conflict, match="only completed outputs"):
            feedback.set_feedback(pool, output.id, analyst, comment="early")
        assert _events(pool, output.id) == 0


def test_another_users_output_is_not_found_and_an_admin_may(pool, analyst, other_analyst, admin):
    output = create_test_llm_output(pool, analyst)
    with pytest.raises(NotFound):
        feedback.set_feedback(pool, output.id, other_analyst, reasons=["wrong"], comment="x")
    with pytest.raises(NotFound):
        feedback.feedback_events(pool, output.id, other_analyst)
    assert _events(pool, output.id) == 0
    assert jobs.get_output(pool, output.id, analyst).feedback_reasons == []

    by_admin = feedback.set_feedback(pool, output.id, admin, corrected_answer="Better.")
    assert by_admin.user_id == admin.id
    assert [e.user_name for e in feedback.feedback_events(pool, output.id, analyst)] == [
        "root-admin"
    ]


def test_reasons_list_add_reorder_remove(pool, analyst, admin):
    with pytest.raises(Forbidden):
        feedback.add_reason(pool, analyst, "vague")
    with pytest.raises(Forbidden):
        feedback.remove_reason(pool, analyst, "wrong")

    added = feedback.add_reason(pool, admin, "  Vague ", "says  little")
    assert (added.name, added.description, added.position) == ("vague", "says little", 7)
    moved = feedback.add_reason(pool, admin, "vague", None, 0)
    assert (moved.description, moved.position) == ("says little", 0)  # description kept
    assert _names(pool)[0] == "vague"

    output = create_test_llm_output(pool, analyst)
    feedback.set_feedback(pool, output.id, analyst, reasons=["vague"])
    feedback.remove_reason(pool, admin, "vague")
    assert "vague" not in _names(pool)
    assert jobs.get_output(pool, output.id, analyst).feedback_reasons == ["vague"]
    with pytest.raises(InvalidInput, match="unknown reason 'vague'"):
        feedback.set_feedback(pool, output.id, analyst, reasons=["vague"])
    with pytest.raises(NotFound):
        feedback.remove_reason(pool, admin, "vague")
    # thumbs and comments still change on an output with a removed reason
    kept = feedback.set_feedback(pool, output.id, analyst, "thumbs_up", comment="ok")
    assert kept.reasons == ["vague"]

    for name, field in [("-x", "name"), ("a;b", "name"), ("x" * 33, "name"), (5, "name")]:
        with pytest.raises(InvalidInput) as refused:
            feedback.add_reason(pool, admin, name)
        assert refused.value.field == field
    for description, position, field in [
        ("d" * 201, None, "description"),
        ("a\x00", None, "description"),
        ("", -1, "position"),
        ("", 1001, "position"),
        ("", True, "position"),
        ("", "3", "position"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            feedback.add_reason(pool, admin, "ok", description, position)
        assert refused.value.field == field
    assert "ok" not in _names(pool)


def test_the_list_holds_at_most_its_cap_even_for_concurrent_admins(pool, admin):
    for n in range(feedback.MAX_LISTED_REASONS - len(_names(pool)) - 1):
        feedback.add_reason(pool, admin, f"reason {n}")
    assert len(_names(pool)) == feedback.MAX_LISTED_REASONS - 1

    start = threading.Barrier(2)
    results: dict[str, str] = {}

    def add(name: str) -> None:
        start.wait()
        try:
            feedback.add_reason(pool, admin, name)
            results[name] = "added"
        except InvalidInput as exc:
            results[name] = exc.message

    threads = [threading.Thread(target=add, args=(name,)) for name in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == ["added", "the list holds at most 50 reasons"]
    assert len(_names(pool)) == feedback.MAX_LISTED_REASONS
    # changing a listed reason at the cap is fine
    feedback.add_reason(pool, admin, "wrong", "false", 1)


def test_comment_search_within_the_viewers_outputs(pool, analyst, other_analyst, admin):
    mine = create_test_llm_output(pool, analyst, comment="Off by 100%")
    also = create_test_llm_output(pool, analyst, comment="off by a_b")
    create_test_llm_output(pool, analyst)
    theirs = create_test_llm_output(pool, other_analyst, comment="off by 100% too")

    def found(viewer, text, **filters) -> list[int]:
        return [o.id for o in jobs.list_outputs(pool, viewer, comment_contains=text, **filters)]

    assert found(analyst, "OFF BY") == [also.id, mine.id]
    assert found(analyst, "100%") == [mine.id]
    assert found(analyst, "a_b") == [also.id] and found(analyst, "a%b") == []
    assert found(analyst, "\\") == []
    assert found(analyst, "off", user_id=other_analyst.id) == [also.id, mine.id]  # own only
    assert found(admin, "100%") == [theirs.id, mine.id]
    assert found(admin, "100%", user_id=other_analyst.id) == [theirs.id]
    assert found(analyst, "off", limit=1, before_id=also.id) == [mine.id]
    assert len(found(analyst, "   ")) == 3  # an empty search is no search
    for bad in ("x" * 201, "a\x00", 5):
        with pytest.raises(InvalidInput) as refused:
            found(analyst, bad)
        assert refused.value.field == "comment_contains"


def test_comment_search_reads_the_commented_outputs_index(pool, analyst):
    from db.feedback_details import like_pattern
    from db.queries import queries

    for _ in range(3):
        create_test_llm_output(pool, analyst, comment="note")
    params = {
        "comment_pattern": like_pattern("note"),
        "user_id": analyst.id,
        **dict.fromkeys(
            ("status", "model", "format", "feedback", "template", "created_after"), None
        ),
        **dict.fromkeys(("created_before", "batch_id", "before_id"), None),
        "limit": 20,
    }
    with pool.connection() as conn:
        conn.execute("SET enable_seqscan = off")  # tiny tables: ask which index it can read
        plan = "\n".join(
            row["QUERY PLAN"]
            for row in conn.execute("EXPLAIN " + queries["list_commented_outputs"], params)
        )
    assert "llm_outputs_commented_idx" in plan


def test_the_pytest_plugin_writes_feedback_details(pool, analyst):
    made = create_test_llm_output(
        pool,
        analyst,
        feedback="thumbs_down",
        reasons=["too long", "wrong"],
        comment="Says too much",
        corrected_answer="Short.",
    )
    assert (made.feedback, made.feedback_reasons) == ("thumbs_down", ["wrong", "too long"])
    assert (made.feedback_comment, made.corrected_answer) == ("Says too much", "Short.")
    assert _events(pool, made.id) == 0  # written as it is, like the thumbs
    with pytest.raises(InvalidInput, match="unknown reason"):
        create_test_llm_output(pool, analyst, reasons=["boring"])
    with pytest.raises(InvalidInput) as refused:
        create_test_llm_output(pool, analyst, comment="a\x00")
    assert refused.value.field == "comment"
    with pool.connection() as conn:  # a refused one writes no output
        assert conn.execute("SELECT count(*) AS n FROM llm_outputs").fetchone()["n"] == 1


def test_the_history_reads_the_latest_changes_oldest_first(pool, analyst):
    output = create_test_llm_output(pool, analyst)
    for n in range(5):
        feedback.set_feedback(pool, output.id, analyst, comment=f"take {n}")
    latest = feedback.feedback_events(pool, output.id, analyst, limit=2)
    assert [e.comment for e in latest] == ["take 3", "take 4"]
    assert len(feedback.feedback_events(pool, output.id, analyst)) == 5
    for bad in (0, 1_001, True, "5"):
        with pytest.raises(InvalidInput) as refused:
            feedback.feedback_events(pool, output.id, analyst, limit=bad)
        assert refused.value.field == "limit"
