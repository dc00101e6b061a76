"""Review queues: scope, who sees a queue, reservations (expiry, two reviewers at once, several
reviewers per item), reviews and skips through the feedback use-case, blind queues, progress and
agreement."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from db import outputs as outputs_db
from tasks import accounts, reviews, templates
from tasks.errors import Conflict, InvalidInput, NotFound
from tasks.testing import create_test_llm_output


def _outputs(pool, user, n, **kwargs) -> list[int]:
    return [create_test_llm_output(pool, user, **kwargs).id for _ in range(n)]


def _queue(pool, user, **kwargs):
    scope = reviews.check_scope(**kwargs.pop("scope", {}))
    return reviews.create_queue(
        pool, user, name=kwargs.pop("name", "Week 12"), scope=scope, **kwargs
    )


def _positions(pool, queue_id) -> list[int]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT output_id FROM review_items WHERE queue_id = %s ORDER BY position", (queue_id,)
        )
        return [r["output_id"] for r in rows]


def _expire(pool, queue_id) -> None:
    with pool.connection() as conn:
        conn.execute(
            "UPDATE review_reservations SET expires_at = now() - interval '1 second'"
            " WHERE queue_id = %s",
            (queue_id,),
        )


def _count(pool, sql, *params) -> int:
    with pool.connection() as conn:
        return conn.execute(sql, params).fetchone()["n"]


def test_a_queue_takes_the_completed_outputs_in_scope_oldest_first(pool, analyst, other_analyst):
    mine = _outputs(pool, analyst, 3)
    create_test_llm_output(pool, analyst, status="failed")
    create_test_llm_output(pool, analyst, status="pending")
    _outputs(pool, other_analyst, 2)
    created = _queue(pool, analyst)
    assert not created.capped
    assert created.queue.items == 3 and created.queue.owner_id == analyst.id
    assert _positions(pool, created.queue.id) == mine


def test_an_admins_queue_takes_anyones_outputs(pool, analyst, other_analyst, admin):
    ids = _outputs(pool, analyst, 1) + _outputs(pool, other_analyst, 1)
    created = _queue(pool, admin)
    assert _positions(pool, created.queue.id) == ids


def test_the_scope_filters(pool, analyst):
    version = templates.save_template(pool, analyst, "explain", "Explain {{concept}} simply")
    echo = _outputs(pool, analyst, 2)
    other = _outputs(pool, analyst, 1, model="offline/other", template="Tell {{concept}}")
    down = _outputs(pool, analyst, 1, feedback="thumbs_down")
    up = _outputs(pool, analyst, 1, feedback="thumbs_up")
    with pool.connection() as conn:
        conn.execute(
            "UPDATE llm_outputs SET template_version_id = %s WHERE id = %s", (version.id, echo[0])
        )
        conn.execute(
            "UPDATE llm_outputs SET created_at = now() - interval '3 days' WHERE id = %s",
            (echo[1],),
        )
    cases = {
        "model": ({"model": "offline/other"}, other),
        "template text": ({"template": "Tell {{concept}}"}, other),
        "template version": ({"template_version_id": version.id}, [echo[0]]),
        "unrated": ({"only": "unrated"}, [echo[1], echo[0], *other]),
        "thumbs down": ({"only": "thumbs_down"}, down),
        "until": ({"until": datetime.now(UTC) - timedelta(days=1)}, [echo[1]]),
        "since": ({"since": datetime.now(UTC) - timedelta(days=1), "only": "thumbs_down"}, down),
    }
    for label, (scope, expected) in cases.items():
        created = _queue(pool, analyst, scope=scope, name=label)
        assert _positions(pool, created.queue.id) == expected, label
        assert created.queue.scope  # kept as given
    assert up  # rated up: in no "only" scope


def test_an_empty_scope_and_bad_scope_values_are_refused_naming_the_field(pool, analyst):
    _outputs(pool, analyst, 1)
    with pytest.raises(InvalidInput) as caught:
        _queue(pool, analyst, scope={"model": "openai/none-of-mine"})
    assert caught.value.field == "scope"
    bad = {
        "model": {"model": "has spaces"},
        "template_version_id": {"template_version_id": "7"},
        "batch_id": {"batch_id": -1},
        "template": {"template": "a\x00b"},
        "only": {"only": "thumbs_up"},
        "since": {"since": datetime(2025, 1, 1)},  # no time zone
        "until": {
            "since": datetime(2025, 2, 1, tzinfo=UTC),
            "until": datetime(2025, 1, 1, tzinfo=UTC),
        },
    }
    for field, scope in bad.items():
        with pytest.raises(InvalidInput) as caught:
            reviews.check_scope(**scope)
        assert caught.value.field == field
    for field, kwargs in {
        "name": {"name": " "},
        "reviewers_per_item": {"reviewers_per_item": 6},
        "blind": {"blind": "yes"},
    }.items():
        with pytest.raises(InvalidInput) as caught:
            _queue(pool, analyst, **kwargs)
        assert caught.value.field == field
    with pytest.raises(InvalidInput, match="name"):
        _queue(pool, analyst, name="x" * 101)
    assert _count(pool, "SELECT count(*) AS n FROM review_queues") == 0


def test_date_bounds_count_whole_days_in_utc():
    scope = reviews.check_scope(since=date(2025, 1, 31), until=date(2025, 1, 31))
    assert scope.since == datetime(2025, 1, 31, tzinfo=UTC)
    assert scope.until == datetime(2025, 2, 1, tzinfo=UTC)
    assert reviews.check_scope(since=date.min, until=date.max).until is None


def test_a_queue_is_capped_and_says_so(pool, analyst, monkeypatch):
    ids = _outputs(pool, analyst, 5)
    monkeypatch.setattr(reviews, "MAX_ITEMS", 3)
    created = _queue(pool, analyst)
    assert created.capped and created.queue.items == 3
    assert _positions(pool, created.queue.id) == ids[2:]  # the newest, oldest first


def test_only_the_owner_and_admins_see_a_queue(pool, analyst, other_analyst, admin):
    ids = _outputs(pool, analyst, 2)
    queue = _queue(pool, analyst).queue
    for action in (
        lambda: reviews.get_queue(pool, queue.id, other_analyst),
        lambda: reviews.status(pool, queue.id, other_analyst),
        lambda: reviews.next_item(pool, queue.id, other_analyst),
        lambda: reviews.review(pool, queue.id, ids[0], other_analyst, feedback="thumbs_up"),
        lambda: reviews.review(pool, queue.id, ids[0], other_analyst, skip=True),
        lambda: reviews.get_item(pool, queue.id, ids[0], other_analyst),
        lambda: reviews.get_queue(pool, "1", other_analyst),
    ):
        with pytest.raises(NotFound):
            action()
    assert reviews.list_queues(pool, other_analyst) == []
    assert [q.id for q in reviews.list_queues(pool, admin)] == [queue.id]
    assert reviews.get_queue(pool, queue.id, admin).id == queue.id
    assert _count(pool, "SELECT count(*) AS n FROM review_reservations") == 0
    assert _count(pool, "SELECT count(*) AS n FROM review_marks") == 0
    assert _count(pool, "SELECT count(*) AS n FROM feedback_events") == 0


def test_an_output_not_in_the_queue_is_not_found(pool, analyst):
    _outputs(pool, analyst, 1)
    queue = _queue(pool, analyst).queue
    later = create_test_llm_output(pool, analyst).id
    with pytest.raises(NotFound):
        reviews.review(pool, queue.id, later, analyst, feedback="thumbs_up")
    with pytest.raises(NotFound):
        reviews.review(pool, queue.id, 2**70, analyst, feedback="thumbs_up")


def test_next_item_is_held_shown_again_on_reload_and_freed_when_the_hold_expires(
    pool, analyst, admin, settings_env
):
    settings_env(REVIEW_HOLD_SECONDS="120")
    ids = _outputs(pool, analyst, 3)
    queue = _queue(pool, analyst).queue
    first = reviews.next_item(pool, queue.id, analyst)
    assert first is not None and first.output_id == ids[0] and first.position == 1
    again = reviews.next_item(pool, queue.id, analyst)
    assert again.output_id == ids[0] and again.reserved_until == first.reserved_until
    held = _count(
        pool,
        "SELECT extract(epoch FROM expires_at - now())::int AS n FROM review_reservations",
    )
    assert 100 < held <= 120
    # another reviewer is given the next one
    assert reviews.next_item(pool, queue.id, admin).output_id == ids[1]
    assert reviews.status(pool, queue.id, analyst).progress.held == 2
    # holds that ran out are free again: the first item goes to whoever asks first
    _expire(pool, queue.id)
    assert reviews.status(pool, queue.id, analyst).progress.held == 0
    assert reviews.next_item(pool, queue.id, admin).output_id == ids[0]
    assert reviews.next_item(pool, queue.id, analyst).output_id == ids[1]


def test_two_reviewers_asking_at_once_never_get_the_same_item(pool, analyst, admin):
    _outputs(pool, analyst, 12)
    queue = _queue(pool, analyst).queue
    start = threading.Barrier(2)
    got: dict[str, list[int]] = {"ana": [], "admin": []}
    failures: list[BaseException] = []

    def work(user, seen):
        try:
            start.wait(timeout=10)
            while (item := reviews.next_item(pool, queue.id, user)) is not None:
                seen.append(item.output_id)
                reviews.review(pool, queue.id, item.output_id, user, feedback="thumbs_up")
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [
        threading.Thread(target=work, args=(analyst, got["ana"])),
        threading.Thread(target=work, args=(admin, got["admin"])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures
    assert not set(got["ana"]) & set(got["admin"])
    assert sorted(got["ana"] + got["admin"]) == sorted(_positions(pool, queue.id))
    assert reviews.status(pool, queue.id, analyst).progress.reviewed == 12


def test_a_pick_waits_for_the_one_before_it_and_sees_its_hold(pool, database_url, analyst, admin):
    """Reviewer A's pick is not committed yet when B asks: B waits for it, then is given
    another item (a pick that read before A's commit would have been given the same)."""
    import psycopg
    from psycopg.rows import dict_row

    from db import reviews as reviews_db

    ids = _outputs(pool, analyst, 2)
    queue = _queue(pool, analyst).queue
    with psycopg.connect(database_url, row_factory=dict_row) as a:
        reviews_db.lock_queue(a, queue.id)
        mine = reviews_db.next_item(a, queue.id, analyst.id, per_item=1, hold_seconds=300)
        assert mine.output_id == ids[0]
        given = []
        b = threading.Thread(target=lambda: given.append(reviews.next_item(pool, queue.id, admin)))
        b.start()
        waiting = 0
        while not waiting and b.is_alive():
            waiting = _count(
                pool,
                "SELECT count(*) AS n FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()",
            )
        a.commit()
    b.join(timeout=30)
    assert given[0].output_id == ids[1]


def test_two_reviewers_per_item_give_an_item_to_two_and_not_a_third(pool, analyst, admin):
    second_admin = accounts.create_user(pool, "root-two", admin=True)
    ids = _outputs(pool, analyst, 2)
    queue = _queue(pool, analyst, reviewers_per_item=2).queue
    assert reviews.next_item(pool, queue.id, analyst).output_id == ids[0]
    assert reviews.next_item(pool, queue.id, admin).output_id == ids[0]
    assert reviews.next_item(pool, queue.id, second_admin).output_id == ids[1]
    # a skip frees a place; a review does not
    reviews.review(pool, queue.id, ids[0], analyst, skip=True)
    reviews.review(pool, queue.id, ids[0], admin, feedback="thumbs_down")
    reviews.review(pool, queue.id, ids[1], second_admin, feedback="thumbs_up")
    assert reviews.next_item(pool, queue.id, second_admin).output_id == ids[0]
    # the analyst skipped the first: never given it again
    assert reviews.next_item(pool, queue.id, analyst).output_id == ids[1]
    reviews.review(pool, queue.id, ids[0], second_admin, feedback="thumbs_down")
    reviews.review(pool, queue.id, ids[1], analyst, feedback="thumbs_up")
    for user in (analyst, admin, second_admin):
        assert reviews.next_item(pool, queue.id, user) is None
    progress = reviews.status(pool, queue.id, analyst).progress
    assert (progress.items, progress.reviewed, progress.mine, progress.skipped) == (2, 2, 1, 1)
    assert progress.summary == "2 of 2 reviewed"


def test_a_review_is_feedback_with_its_event_and_a_mark(pool, analyst):
    ids = _outputs(pool, analyst, 2)
    queue = _queue(pool, analyst).queue
    item = reviews.next_item(pool, queue.id, analyst)
    mark = reviews.review(
        pool,
        queue.id,
        item.output_id,
        analyst,
        feedback="thumbs_down",
        reasons=["Too  long", "wrong"],
        comment="Rambles",
        corrected_answer="Short answer.",
    )
    assert (mark.feedback, mark.reasons, mark.skipped) == (
        "thumbs_down",
        ["wrong", "too long"],
        False,
    )
    with pool.connection() as conn:
        output = outputs_db.get_output(conn, ids[0])
        history = outputs_db.feedback_history(conn, ids[0])
    assert output.feedback == "thumbs_down" and output.feedback_reasons == ["wrong", "too long"]
    assert (output.feedback_comment, output.corrected_answer) == ("Rambles", "Short answer.")
    assert [(e.user_id, e.new_value) for e in history] == [(analyst.id, "thumbs_down")]
    assert _count(pool, "SELECT count(*) AS n FROM review_reservations") == 0
    # reviewing again updates the mark, and keeps what is left out
    again = reviews.review(pool, queue.id, ids[0], analyst, feedback="thumbs_up", reasons=[])
    assert (again.feedback, again.reasons) == ("thumbs_up", [])
    assert _count(pool, "SELECT count(*) AS n FROM review_marks") == 1
    with pool.connection() as conn:
        assert outputs_db.get_output(conn, ids[0]).feedback_comment == "Rambles"
    # a third review that only comments keeps the mark's thumbs and reasons
    third = reviews.review(pool, queue.id, ids[0], analyst, comment="Fine now")
    assert (third.feedback, third.reasons) == ("thumbs_up", [])
    fourth = reviews.review(pool, queue.id, ids[0], analyst, reasons=["great"])
    assert (fourth.feedback, fourth.reasons) == ("thumbs_up", ["great"])
    assert reviews.next_item(pool, queue.id, analyst).output_id == ids[1]
    assert reviews.get_item(pool, queue.id, ids[0], analyst).my_feedback == "thumbs_up"


def test_a_review_whose_mark_cannot_be_written_leaves_no_feedback(pool, analyst, monkeypatch):
    from db import reviews as reviews_db

    (output_id,) = _outputs(pool, analyst, 1)
    queue = _queue(pool, analyst).queue
    reviews.next_item(pool, queue.id, analyst)

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(reviews_db, "save_mark", broken)
    with pytest.raises(RuntimeError):
        reviews.review(pool, queue.id, output_id, analyst, feedback="thumbs_up", comment="ok")
    with pool.connection() as conn:
        output = outputs_db.get_output(conn, output_id)
        assert outputs_db.feedback_history(conn, output_id) == []
    assert (output.feedback, output.feedback_comment) == ("none", None)
    assert _count(pool, "SELECT count(*) AS n FROM review_reservations") == 1  # still held


def test_bad_reviews_are_refused_and_change_nothing(pool, analyst, admin):
    ids = _outputs(pool, analyst, 1)
    queue = _queue(pool, analyst).queue
    reviews.next_item(pool, queue.id, analyst)
    for kwargs, field in (
        ({"feedback": "great"}, "feedback"),
        ({"feedback": "thumbs_up", "reasons": ["no such reason"]}, "reasons"),
        ({"comment": "x" * 2001}, "comment"),
        ({"corrected_answer": "a\x00"}, "corrected_answer"),
        ({}, "feedback"),
        ({"skip": True, "feedback": "thumbs_up"}, "skip"),
        ({"skip": "yes"}, "skip"),
    ):
        with pytest.raises(InvalidInput) as caught:
            reviews.review(pool, queue.id, ids[0], analyst, **kwargs)
        assert caught.value.field == field
    assert _count(pool, "SELECT count(*) AS n FROM review_marks") == 0
    assert _count(pool, "SELECT count(*) AS n FROM feedback_events") == 0
    assert _count(pool, "SELECT count(*) AS n FROM review_reservations") == 1
    # fully reviewed: someone who does not hold it may not add another review
    reviews.review(pool, queue.id, ids[0], analyst, feedback="thumbs_up")
    with pytest.raises(Conflict):
        reviews.review(pool, queue.id, ids[0], admin, feedback="thumbs_down")
    assert _count(pool, "SELECT count(*) AS n FROM feedback_events") == 1


def test_an_item_not_held_may_be_reviewed_while_it_lacks_reviews(pool, analyst, admin):
    ids = _outputs(pool, analyst, 2)
    queue = _queue(pool, analyst).queue
    reviews.review(pool, queue.id, ids[1], admin, feedback="thumbs_up")
    assert reviews.next_item(pool, queue.id, analyst).output_id == ids[0]
    reviews.review(pool, queue.id, ids[0], analyst, feedback="thumbs_up")
    assert reviews.next_item(pool, queue.id, analyst) is None


def test_a_blind_queue_hides_the_model_and_cost(pool, analyst):
    _outputs(pool, analyst, 1, model="offline/secret")
    blind = _queue(pool, analyst, blind=True).queue
    item = reviews.next_item(pool, blind.id, analyst)
    assert item.model is None and item.cost is None
    assert "offline/secret" not in item.model_dump_json()
    scoped = _queue(pool, analyst, blind=True, scope={"model": "offline/secret"}).queue
    assert scoped.scope == {"model": reviews.HIDDEN_MODEL}
    assert reviews.status(pool, scoped.id, analyst).queue.scope["model"] == reviews.HIDDEN_MODEL
    assert "offline/secret" not in str([q.scope for q in reviews.list_queues(pool, analyst)])
    seen = _queue(pool, analyst, name="open").queue
    assert reviews.next_item(pool, seen.id, analyst).model == "offline/secret"


def test_progress_and_agreement_against_a_hand_counted_example(pool, analyst, admin):
    second = accounts.create_user(pool, "root-two", admin=True)
    ids = _outputs(pool, analyst, 5)
    queue = _queue(pool, analyst, reviewers_per_item=3).queue
    marks = {
        # item: thumbs of (analyst, admin, second)
        ids[0]: ("thumbs_up", "thumbs_up", "thumbs_up"),  # all agree: 3 pairs, 3 agree
        ids[1]: ("thumbs_up", "thumbs_down", "thumbs_up"),  # 3 pairs, 1 agrees
        ids[2]: ("thumbs_down", "thumbs_down", None),  # two thumbs: 1 pair, agrees
        ids[3]: ("thumbs_up", "skip", None),  # one thumb: left out
    }
    for output_id, given in marks.items():
        for user, thumbs in zip((analyst, admin, second), given, strict=True):
            if thumbs == "skip":
                reviews.review(pool, queue.id, output_id, user, skip=True)
            elif thumbs:
                reviews.review(pool, queue.id, output_id, user, feedback=thumbs)
    # a review with no thumbs counts as a review, not in the agreement
    reviews.review(pool, queue.id, ids[2], second, comment="unsure")
    status = reviews.status(pool, queue.id, analyst)
    assert status.progress.items == 5
    assert status.progress.reviewed == 3  # ids 0, 1, 2 have three reviews
    assert (status.progress.mine, status.progress.reviews) == (4, 10)
    agreement = status.agreement
    assert (agreement.items, agreement.unanimous) == (3, 2)
    assert (agreement.pairs, agreement.agreeing_pairs) == (7, 5)
    assert agreement.unanimous_share == pytest.approx(2 / 3)
    assert agreement.pairwise == pytest.approx(5 / 7)
    single = _queue(pool, analyst, name="single").queue
    assert reviews.status(pool, single.id, analyst).agreement is None
