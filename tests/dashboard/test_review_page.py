"""Review: make a queue from the scope form, go through it (save and next, skip) with thumbs,
reasons and a comment, progress as "n of m reviewed", the model hidden in a blind queue,
agreement with several reviewers, and another user's queue not found."""

from __future__ import annotations

import json

from db import outputs as outputs_db
from tasks import accounts, reviews
from tasks.testing import create_test_llm_output

PAGE = "dashboard/review.py"


def _texts(at) -> str:
    parts = [
        *(str(e.value) for e in at.markdown),
        *(str(e.value) for e in at.caption),
        *(str(e.value) for e in at.title),
        *(str(e.value) for e in at.subheader),
        *(str(e.value) for e in at.text),
        *(str(e.value) for e in at.code),
        *(str(e.proto.text) for e in at.get("progress")),
        *(str(e.proto.label) for e in at.get("badge")),
    ]
    return "\n".join(parts)


def _errors(at) -> str:
    return " ".join(str(e.value) for e in at.error)


def _outputs(pool, user, n, **kwargs) -> list[int]:
    return [
        create_test_llm_output(pool, user, raw_response=f"Answer number {i}", **kwargs).id
        for i in range(n)
    ]


def _queue(pool, user, **kwargs) -> int:
    scope = reviews.check_scope(**kwargs.pop("scope", {}))
    return reviews.create_queue(pool, user, name="Week 12", scope=scope, **kwargs).queue.id


def test_a_reviewer_makes_a_queue_and_goes_through_it(app_as, pool, analyst):
    ids = _outputs(pool, analyst, 3, model="offline/visible")
    with pool.connection() as conn:
        conn.execute("UPDATE llm_outputs SET prompt = 'Explain recursion, please'")
    at = app_as(analyst, PAGE)
    assert not at.exception
    assert "No review queue yet" in _texts(at)
    at.text_input(key="review_name").set_value("Week 12")
    at.radio(key="review_only").set_value("unrated")
    at.button(key="review_make").click().run()
    assert not at.exception, at.exception
    assert not at.error
    text = _texts(at)
    assert "Week 12" in text and "0 of 3 reviewed" in text
    assert "Answer number 0" in text and "offline/visible" in text
    assert "Explain recursion, please" in text
    assert {"concept": "recursion"} in [json.loads(e.value) for e in at.json]
    key = f"review_{at.query_params['queue'][0]}_{ids[0]}"
    at.radio(key=f"{key}_thumbs").set_value("thumbs_down")
    at.multiselect(key=f"{key}_reasons").set_value(["wrong", "too long"])
    at.text_area(key=f"{key}_comment").set_value("Misses the base case")
    at.button(key="review_save").click().run()
    assert not at.exception and not at.error, _errors(at)
    with pool.connection() as conn:
        output = outputs_db.get_output(conn, ids[0])
    assert output.feedback == "thumbs_down"
    assert output.feedback_reasons == ["wrong", "too long"]
    assert output.feedback_comment == "Misses the base case"
    text = _texts(at)
    assert "1 of 3 reviewed" in text and "Answer number 1" in text
    at.button(key="review_skip").click().run()
    text = _texts(at)
    assert "Answer number 2" in text
    assert "You reviewed 1 and skipped 1" in text
    # the list shows the queue's progress
    at.button(key="review_back").click().run()
    assert "1 of 3 reviewed" in _texts(at) and "unrated" in _texts(at)


def test_with_no_output_the_page_says_where_to_start(app_as, analyst):
    at = app_as(analyst, PAGE)
    assert not at.exception
    assert "no output to review yet" in " ".join(str(e.value) for e in at.info)
    assert "review_make" not in [b.key for b in at.button]
    assert "Submit a prompt" in [str(e.proto.label) for e in at.main.get("page_link")]


def test_a_review_with_nothing_said_is_refused_next_to_the_controls(app_as, pool, analyst):
    _outputs(pool, analyst, 1)
    queue_id = _queue(pool, analyst)
    at = app_as(analyst, PAGE, queue=str(queue_id))
    at.button(key="review_save").click().run()
    assert "give feedback" in _errors(at)
    assert reviews.status(pool, queue_id, analyst).progress.reviews == 0


def test_bad_scopes_are_refused_with_the_field_named(app_as, pool, analyst):
    _outputs(pool, analyst, 1, model="offline/echo")
    at = app_as(analyst, PAGE)
    at.button(key="review_make").click().run()
    assert "name" in _errors(at)
    at.text_input(key="review_name").set_value("Downs")
    at.radio(key="review_only").set_value("thumbs_down")
    at.button(key="review_make").click().run()
    assert "scope" in _errors(at) and "no completed output" in _errors(at)
    assert reviews.list_queues(pool, analyst) == []


def test_a_blind_queue_hides_the_model(app_as, pool, analyst):
    _outputs(pool, analyst, 1, model="offline/secret-model")
    queue_id = _queue(pool, analyst, blind=True, scope={"model": "offline/secret-model"})
    at = app_as(analyst, PAGE, queue=str(queue_id))
    assert not at.exception
    text = _texts(at)
    assert "Answer number 0" in text and "model hidden" in text
    assert "offline/secret-model" not in text
    assert "Cost" not in [m.label for m in at.metric]
    at.button(key="review_back").click().run()
    assert "Week 12" in _texts(at) and "offline/secret-model" not in _texts(at)


def test_agreement_shows_with_several_reviewers(app_as, pool, analyst, admin):
    ids = _outputs(pool, analyst, 2)
    queue_id = _queue(pool, analyst, reviewers_per_item=2)
    reviews.review(pool, queue_id, ids[0], analyst, feedback="thumbs_up")
    reviews.review(pool, queue_id, ids[0], admin, feedback="thumbs_up")
    reviews.review(pool, queue_id, ids[1], admin, feedback="thumbs_down")
    at = app_as(analyst, PAGE, queue=str(queue_id))
    assert not at.exception
    figures = {m.label: m.value for m in at.metric}
    assert figures["All reviewers agree"] == "100%"
    assert figures["Pairwise agreement"] == "100%"
    text = _texts(at)
    assert "1 of 2 reviewed" in text and "1 of 1 items" in text and "1 of 1 pairs" in text
    assert "Answer number 1" in text  # the analyst's next item


def test_another_users_queue_is_not_found(app_as, pool, analyst, other_analyst, admin):
    _outputs(pool, analyst, 1)
    queue_id = _queue(pool, analyst)
    at = app_as(other_analyst, PAGE, queue=str(queue_id))
    assert not at.exception
    assert f"Review queue {queue_id} not found" in _errors(at)
    assert reviews.status(pool, queue_id, analyst).progress.held == 0
    at = app_as(other_analyst, PAGE, queue="x" * 40)
    assert "not found" in _errors(at)
    at = app_as(other_analyst, PAGE)
    assert "Week 12" not in _texts(at)
    at = app_as(admin, PAGE)
    assert "Week 12" in _texts(at)
    second = accounts.create_user(pool, "root-two", admin=True)
    assert reviews.list_queues(pool, second)
