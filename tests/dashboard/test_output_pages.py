"""Outputs and Output: only one's own (all, with a user filter, for admins), filters and keyset
pages, `?id=` of someone else's output is not found, feedback buttons, re-run and regenerate."""

from __future__ import annotations

import json

from db import outputs as outputs_db
from tasks import comparisons
from tasks import outputs as jobs
from tasks.testing import create_test_llm_output

OUTPUTS = "dashboard/outputs.py"
DETAIL = "dashboard/output_detail.py"


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def _listed(at) -> list[int]:
    return [int(i) for i in at.dataframe[0].value["id"]]


def test_outputs_list_shows_only_own_outputs(app_as, pool, analyst, other_analyst, admin):
    mine = [create_test_llm_output(pool, analyst).id for _ in range(2)]
    failed = create_test_llm_output(pool, analyst, status="failed").id
    theirs = create_test_llm_output(pool, other_analyst).id

    at = app_as(analyst, OUTPUTS)
    assert not at.exception
    assert _listed(at) == [failed, *reversed(mine)]
    table = at.dataframe[0].value
    assert "user" not in table.columns
    assert {"created", "context", "answer", "kind", "model", "status", "feedback"} <= set(
        table.columns
    )
    at.selectbox(key="outputs_status").set_value("failed").run()
    assert _listed(at) == [failed]

    at = app_as(admin, OUTPUTS)
    assert _listed(at) == [theirs, failed, *reversed(mine)]
    assert set(at.dataframe[0].value["user"]) == {"ana", "otto"}
    at.selectbox(key="outputs_user").set_value(other_analyst.id).run()
    assert _listed(at) == [theirs]


def test_outputs_are_paged_by_keyset(app_as, pool, analyst):
    ids = [create_test_llm_output(pool, analyst).id for _ in range(22)]
    at = app_as(analyst, OUTPUTS)
    assert _listed(at) == list(reversed(ids))[:20]
    assert "20 per page" in _texts(at.caption)
    at.button(key="outputs_older").click().run()
    assert _listed(at) == [ids[1], ids[0]]
    assert at.button(key="outputs_older").disabled
    at.button(key="outputs_newer").click().run()
    assert len(_listed(at)) == 20


def test_a_pending_output_refreshes_the_list_from_the_first_run(app_as, pool, analyst, monkeypatch):
    """The page reads its rows once: the refresh starts without a second run of the page."""
    done = create_test_llm_output(pool, analyst).id
    waiting = create_test_llm_output(pool, analyst, status="pending").id
    reads = []
    real = jobs.list_outputs
    monkeypatch.setattr(jobs, "list_outputs", lambda *a, **k: reads.append(1) or real(*a, **k))

    at = app_as(analyst, OUTPUTS)
    assert not at.exception
    assert _listed(at) == [waiting, done]
    assert at.session_state["live:outputs"] is True
    assert len(reads) == 1

    with pool.connection() as conn:
        conn.execute(
            "UPDATE llm_outputs SET status = 'completed', completed_at = now() WHERE id = %s",
            (waiting,),
        )
    at.run()
    assert at.session_state["live:outputs"] is False


def test_an_output_row_is_recognisable(app_as, pool, analyst, admin):
    long_context = {"concept": "recursion", "audience": "a child", "notes": "x" * 200}
    done = create_test_llm_output(
        pool, analyst, context=long_context, raw_response="Recursion is a function calling itself."
    )
    failed = create_test_llm_output(
        pool, analyst, status="failed", error_message="rate limited by the provider"
    )
    again = jobs.re_run(pool, done.id, analyst)
    at = app_as(analyst, OUTPUTS)
    assert not at.exception
    rows = {r["id"]: r for r in at.dataframe[0].value.to_dict("records")}
    summary = rows[done.id]["context"]
    assert summary.startswith("audience=a child · concept=recursion · notes=xxx")
    assert len(summary) <= 60
    assert rows[done.id]["answer"] == "Recursion is a function calling itself."
    assert rows[failed.id]["answer"] == "Failed: rate limited by the provider"
    assert [rows[i]["kind"] for i in (done.id, again.output_id)] == ["original", "re-run"]
    assert rows[again.output_id]["answer"] == "…"  # still pending


def test_the_outputs_table_fits_a_1440_px_screen(app_as, pool, analyst, admin):
    create_test_llm_output(pool, analyst)
    for viewer in (analyst, admin):
        at = app_as(viewer, OUTPUTS)
        table = at.dataframe[0]
        shown = table.value.columns
        config = json.loads(table.proto.columns)
        widths = [config[name]["width"] for name in shown]
        assert all(isinstance(w, int) for w in widths)
        # The table is 979 px wide at 1440 px with the sidebar open (measured in Chromium), and
        # its row-selection column takes about 35 of them.
        assert sum(widths) <= 900


def test_someone_elses_output_is_not_found(app_as, pool, analyst, other_analyst, admin):
    theirs = create_test_llm_output(pool, other_analyst, raw_response="secret answer")
    at = app_as(analyst, DETAIL, id=str(theirs.id))
    assert not at.exception
    assert f"Output {theirs.id} not found." in _texts(at.error)
    assert "secret answer" not in _texts(at.text)
    at = app_as(analyst, DETAIL, id="not-a-number")
    assert "not found" in _texts(at.error)
    at = app_as(admin, DETAIL, id=str(theirs.id))
    assert at.title[0].value.endswith(f"Output #{theirs.id}")
    assert "secret answer" in _texts(at.text)


def test_detail_renders_by_format_and_feedback_buttons_change_the_db(app_as, pool, analyst):
    output = create_test_llm_output(
        pool, analyst, format="json", raw_response='{"a": 1}', parsed_output={"a": 1}
    )
    at = app_as(analyst, DETAIL, id=str(output.id))
    assert not at.exception
    answer, context = (json.loads(j.value) for j in at.json)
    assert (answer, context) == ({"a": 1}, {"concept": "recursion"})
    assert "Current feedback: none" in _texts(at.caption)
    at.button(key="feedback_thumbs_up").click().run()
    assert jobs.get_output(pool, output.id, analyst).feedback == "thumbs_up"
    assert "thumbs up" in _texts(at.caption)
    at.button(key="feedback_thumbs_down").click().run()
    assert jobs.get_output(pool, output.id, analyst).feedback == "thumbs_down"
    at.button(key="feedback_none").click().run()
    assert jobs.get_output(pool, output.id, analyst).feedback == "none"
    assert not at.exception


def test_failed_output_shows_its_error_and_no_feedback(app_as, pool, analyst):
    output = create_test_llm_output(pool, analyst, status="failed", error_message="HTTP 401: no")
    at = app_as(analyst, DETAIL, id=str(output.id))
    assert "HTTP 401: no" in _texts(at.error)
    assert not [b for b in at.button if b.key and b.key.startswith("feedback_")]


def test_html_is_sanitized_and_markdown_rendered(app_as, pool, analyst):
    html = create_test_llm_output(
        pool, analyst, format="html", raw_response="<p onclick='x()'>hi</p><script>bad()</script>"
    )
    at = app_as(analyst, DETAIL, id=str(html.id))
    [shown] = at.get("html")
    assert "hi" in shown.proto.body and "script" not in shown.proto.body
    assert "onclick" not in shown.proto.body
    md = create_test_llm_output(pool, analyst, format="markdown", raw_response="## Big title")
    at = app_as(analyst, DETAIL, id=str(md.id))
    assert "## Big title" in _texts(at.markdown)


def test_re_run_and_regenerate_make_children(app_as, pool, analyst):
    parent = create_test_llm_output(pool, analyst, context={"concept": "recursion"})
    at = app_as(analyst, DETAIL, id=str(parent.id))
    at.button(key="re_run").click().run()
    assert not at.exception
    newest = jobs.list_outputs(pool, analyst)[0]
    assert (newest.kind, newest.parent_id, newest.context) == (
        "re_run",
        parent.id,
        {"concept": "recursion"},
    )
    assert at.title[0].value.endswith(f"Output #{newest.id}")
    assert f"Made from output #{parent.id}" in [p.proto.label for p in at.get("page_link")]

    at = app_as(analyst, DETAIL, id=str(parent.id))
    at.text_area(key=f"regenerate_{parent.id}_context").input('{"concept": "graphs"}')
    at.selectbox(key=f"regenerate_{parent.id}_format").set_value("json")
    at.button(key=f"regenerate_{parent.id}_submit").click().run()
    assert not at.exception
    made = jobs.list_outputs(pool, analyst)[0]
    assert (made.kind, made.parent_id, made.context, made.format) == (
        "regenerate",
        parent.id,
        {"concept": "graphs"},
        "json",
    )
    at = app_as(analyst, DETAIL, id=str(parent.id))
    links = [p.proto.label for p in at.get("page_link")]
    assert any(label.startswith(f"#{newest.id} · re-run") for label in links)
    assert any(label.startswith(f"#{made.id} · regenerate") for label in links)


def _set_latency(pool, output_id: int, ms: int) -> None:
    with pool.connection() as conn:
        conn.execute("UPDATE llm_outputs SET latency_ms = %s WHERE id = %s", (ms, output_id))


def test_latency_below_a_second_is_in_milliseconds(app_as, pool, analyst):
    quick, slow = create_test_llm_output(pool, analyst), create_test_llm_output(pool, analyst)
    _set_latency(pool, quick.id, 4)
    _set_latency(pool, slow.id, 2500)
    at = app_as(analyst, DETAIL, id=str(quick.id))
    assert next(m.value for m in at.metric if m.label == "Latency") == "4 ms"
    at = app_as(analyst, DETAIL, id=str(slow.id))
    assert next(m.value for m in at.metric if m.label == "Latency") == "2.50 s"


def test_the_figures_leave_room_for_a_cost_of_six_decimals(app_as, pool, analyst):
    output = create_test_llm_output(pool, analyst, queue="low")
    with pool.connection() as conn:
        conn.execute("UPDATE llm_outputs SET cost = 0.005123 WHERE id = %s", (output.id,))
    at = app_as(analyst, DETAIL, id=str(output.id))
    assert [m.label for m in at.metric] == [
        "Prompt tokens",
        "Completion tokens",
        "Cost",
        "Latency",
        "Attempts",
    ]
    assert next(m.value for m in at.metric if m.label == "Cost") == "$0.005123"
    assert any(c.value.startswith("Queue low · created ") for c in at.caption)


def _feedback_buttons(at) -> dict[str, str]:
    return {b.key: b.proto.type for b in at.button if b.key and b.key.startswith("feedback_")}


def test_an_unrated_output_has_no_feedback_highlighted(app_as, pool, analyst):
    output = create_test_llm_output(pool, analyst)
    at = app_as(analyst, DETAIL, id=str(output.id))
    assert _feedback_buttons(at) == {
        "feedback_thumbs_up": "secondary",
        "feedback_thumbs_down": "secondary",
    }
    at.button(key="feedback_thumbs_up").click().run()
    assert _feedback_buttons(at) == {
        "feedback_thumbs_up": "primary",
        "feedback_thumbs_down": "secondary",
        "feedback_none": "secondary",
    }
    at.button(key="feedback_none").click().run()
    assert jobs.get_output(pool, output.id, analyst).feedback == "none"
    assert set(_feedback_buttons(at).values()) == {"secondary"}


def test_after_regenerate_the_new_output_starts_with_a_fresh_form(app_as, pool, analyst):
    parent = create_test_llm_output(pool, analyst, context={"concept": "trees", "audience": "kids"})
    at = app_as(analyst, DETAIL, id=str(parent.id))
    at.session_state[f"regenerate_{parent.id}_open"] = True  # opened by the person
    at.text_area(key=f"regenerate_{parent.id}_context").input('{"concept": "graphs"}')
    at.button(key=f"regenerate_{parent.id}_submit").click().run()
    assert not at.exception
    made = jobs.list_outputs(pool, analyst)[0]
    assert made.context == {"concept": "graphs", "audience": "kids"}
    assert at.title[0].value.endswith(f"Output #{made.id}")
    assert json.loads(at.text_area(key=f"regenerate_{made.id}_context").value) == made.context
    assert not at.session_state[f"regenerate_{made.id}_open"]
    assert not [k for k in at.session_state if str(k).startswith(f"regenerate_{parent.id}_")]


def test_output_page_without_id_lists_ones_recent_outputs(app_as, pool, analyst, other_analyst):
    older = create_test_llm_output(
        pool, analyst, context={"concept": "tides", "audience": "a child"}
    )
    newer = create_test_llm_output(pool, analyst, status="failed")
    create_test_llm_output(pool, other_analyst, context={"concept": "secret"})
    at = app_as(analyst, DETAIL)
    assert not at.exception
    assert "recent outputs" in at.title[0].value
    assert not at.number_input
    links = {p.proto.label: p.proto.query_string for p in at.get("page_link")}
    assert f"#{newer.id} · failed · offline/echo · concept=recursion" in links
    label = f"#{older.id} · completed · offline/echo · concept=tides · audience=a child"
    assert links[label] == f"id={older.id}"
    assert not any("secret" in label for label in links)


def test_output_page_without_id_and_no_outputs_points_to_submit(app_as, analyst):
    at = app_as(analyst, DETAIL)
    assert not at.exception
    assert "Submit a job" in [p.proto.label for p in at.get("page_link")]


def test_a_blind_answer_shows_no_model_and_cannot_run_again_until_judged(app_as, pool, analyst):
    made = comparisons.submit_comparison(
        pool,
        user=analyst,
        template="Explain {{ c }}",
        context={"c": "sets"},
        models=["offline/echo", "offline/verbose"],
        blind=True,
    )
    first = made.outputs[0].output_id
    at = app_as(analyst, DETAIL, id=str(first))
    assert not at.exception
    words = _texts(at.caption) + _texts(at.markdown)
    assert jobs.BLIND_MODEL in words and "offline/" not in words
    assert "pick the better answer" in _texts(at.caption)
    assert not [b for b in at.button if b.key == "re_run"]
    assert "regenerate" not in [f.id for f in at.get("form")]

    at = app_as(analyst, OUTPUTS)
    assert set(at.dataframe[0].value["model"]) == {jobs.BLIND_MODEL}

    with pool.connection() as conn:
        for answer in made.outputs:
            outputs_db.set_output_state(
                conn, answer.output_id, status="completed", raw_response="hi", parsed_output="hi"
            )
    comparisons.pick(pool, made.comparison_id, analyst, None)
    model = jobs.get_output(pool, first, analyst).model
    assert model in {"offline/echo", "offline/verbose"}
    at = app_as(analyst, DETAIL, id=str(first))
    assert model in _texts(at.caption)
    assert [b for b in at.button if b.key == "re_run"]
