"""Submitting, reading, judging and repeating outputs, against real Postgres."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from db import outputs as outputs_db
from tasks import batches, comparisons, feedback
from tasks import outputs as jobs
from tasks.errors import Conflict, InvalidInput, NotFound
from tasks.llm.rendering import MAX_CONTEXT_DEPTH
from tasks.testing import assert_llm_job_enqueued, create_test_llm_output

TEMPLATE = "Explain {{concept}} to a beginner"


def _nested(levels: int) -> dict:
    """A context `levels` objects deep, built without recursion."""
    value: object = "x"
    for _ in range(levels):
        value = {"concept": value}
    assert isinstance(value, dict)
    return value


def _count(pool) -> tuple[int, int]:
    with pool.connection() as conn:
        outputs = conn.execute("SELECT count(*) AS n FROM llm_outputs").fetchone()["n"]
        queued = conn.execute("SELECT count(*) AS n FROM procrastinate_jobs").fetchone()["n"]
    return outputs, queued


def test_submit_writes_output_and_job_together(pool, analyst):
    with assert_llm_job_enqueued(pool, template=TEMPLATE, model="offline/echo") as found:
        sub = jobs.submit(
            pool,
            user=analyst,
            template=TEMPLATE,
            context={"concept": "recursion"},
            model="offline/echo",
            format="markdown",
            queue="high",
        )
    assert sub.status == "queued"
    assert found[0]["job_id"] == sub.job_id and found[0]["output_id"] == sub.output_id
    assert found[0]["queue_name"] == "high" and found[0]["priority"] == 20
    out = jobs.get_output(pool, sub.output_id, analyst)
    assert (out.status, out.job_id, out.kind, out.queue) == (
        "pending",
        sub.job_id,
        "original",
        "high",
    )
    assert sub.estimated_completion > out.created_at


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"context": {}}, "context", "missing variables: concept"),
        ({"format": "yaml"}, "format", "unknown format 'yaml'"),
        ({"queue": "urgent"}, "queue", "unknown queue 'urgent'"),
        ({"model": "gpt-4o"}, "model", "no worker serves it"),
        ({"model": "nonsense"}, "model", "unknown model"),
        ({"model": "offline/nope"}, "model", "unknown offline model"),
        ({"agent": "ghost"}, "agent", "no agent 'ghost'"),
        ({"template": "{{ concept"}, "template", "syntax error"),
        ({"template": "{{ ''.__class__ }}", "context": {}}, "context", "undefined value"),
        ({"template": "{{ cycler.__init__ }}", "context": {}}, "template", "sandbox"),
        ({"context": _nested(MAX_CONTEXT_DEPTH + 1)}, "context", "nested too deeply (at most 32"),
        ({"context": _nested(10_000)}, "context", "nested too deeply (at most 32"),
        (
            {
                "template": "{% for i in range(100000) %}{% for j in range(9) %}{% endfor %}"
                "{% endfor %}"
            },
            "template",
            "template too expensive",
        ),
        ({"context": {"concept": "x" * 70_000}}, "context", "larger than 64 KiB"),
        ({"context": ["concept"]}, "context", "JSON object"),
        ({"fetcher": "nope"}, "fetcher", "unknown context fetcher"),
    ],
)
def test_invalid_submit_names_field_and_writes_nothing(pool, analyst, overrides, field, fragment):
    params = {
        "template": TEMPLATE,
        "context": {"concept": "c"},
        "model": "offline/echo",
        "format": "text",
        **overrides,
    }
    with pytest.raises(InvalidInput) as caught:
        jobs.submit(pool, user=analyst, **params)
    assert caught.value.field == field
    assert fragment in caught.value.message
    assert _count(pool) == (0, 0)


def test_a_context_at_the_nesting_limit_is_queued(pool, analyst):
    context = _nested(MAX_CONTEXT_DEPTH)
    sub = jobs.submit(
        pool, user=analyst, template="{{ concept }}", context=context, model="offline/echo"
    )
    assert jobs.get_output(pool, sub.output_id, analyst).context == context


def test_output_and_job_roll_back_together(pool, analyst, monkeypatch):
    real_enqueue = outputs_db.enqueue_output

    def enqueue_a_bad_output(conn, output, **kwargs):
        # the output breaks a CHECK constraint after its job was inserted in the same statement
        return real_enqueue(conn, dataclasses.replace(output, kind="not-a-kind"), **kwargs)

    monkeypatch.setattr(outputs_db, "enqueue_output", enqueue_a_bad_output)
    with pytest.raises(psycopg.errors.CheckViolation):
        jobs.submit(
            pool, user=analyst, template=TEMPLATE, context={"concept": "c"}, model="offline/echo"
        )
    assert _count(pool) == (0, 0)
    monkeypatch.undo()
    sub = jobs.submit(
        pool, user=analyst, template=TEMPLATE, context={"concept": "c"}, model="offline/echo"
    )
    assert _count(pool) == (1, 1)  # the connection the failure left behind still works
    with pool.connection() as conn:
        job = conn.execute(
            "SELECT args, task_name, queue_name, priority FROM procrastinate_jobs WHERE id = %s",
            (sub.job_id,),
        ).fetchone()
        output = conn.execute(
            "SELECT job_id FROM llm_outputs WHERE id = %s", (sub.output_id,)
        ).fetchone()
    assert job == {
        "args": {"output_id": sub.output_id},
        "task_name": "llm_job",
        "queue_name": "default",
        "priority": 10,
    }
    assert output["job_id"] == sub.job_id


def test_use_cases_on_a_connection_commit_with_the_callers_transaction(pool, analyst):
    # what the API adds to them (the idempotency key, the rate limit) commits with them or not
    # at all: they write inside the caller's transaction and commit nothing themselves
    def queue_everything(conn: psycopg.Connection) -> None:
        first = jobs.submit_on(
            conn, user=analyst, template=TEMPLATE, context={"concept": "c"}, model="offline/echo"
        )
        jobs.re_run_on(conn, first.output_id, analyst)
        jobs.regenerate_on(conn, first.output_id, analyst, new_context={"concept": "d"})
        comparisons.submit_comparison_on(
            conn,
            user=analyst,
            template=TEMPLATE,
            context={"concept": "c"},
            models=["offline/echo", "offline/brief"],
        )
        batches.submit_batch_on(
            conn, user=analyst, template=TEMPLATE, model="offline/echo", rows=[{"concept": "b"}]
        )

    with pytest.raises(RuntimeError), pool.connection() as conn, conn.transaction():
        queue_everything(conn)
        raise RuntimeError("the caller gives up")
    assert _count(pool) == (0, 0)
    with pool.connection() as conn, conn.transaction():
        queue_everything(conn)
    assert _count(pool) == (6, 6)


def test_context_fetcher_merges_under_explicit_context(pool, analyst):
    sub = jobs.submit(
        pool,
        user=analyst,
        template="Hi {{user.name}}, today is {{today}}",
        context={"today": "someday"},
        model="offline/echo",
        fetcher="user_profile",
    )
    out = jobs.get_output(pool, sub.output_id, analyst)
    assert out.context["user"]["name"] == "ana"
    assert out.context["today"] == "someday"
    sub2 = jobs.submit(
        pool, user=analyst, template="{{today}}", model="offline/echo", fetcher="current_time"
    )
    assert len(jobs.get_output(pool, sub2.output_id, analyst).context["today"]) == 10


def test_users_see_only_their_own_outputs(pool, analyst, other_analyst, admin):
    mine = create_test_llm_output(pool, analyst)
    theirs = create_test_llm_output(pool, other_analyst)
    with pytest.raises(NotFound):
        jobs.get_output(pool, theirs.id, analyst)
    assert [o.id for o in jobs.list_outputs(pool, analyst)] == [mine.id]
    assert {o.id for o in jobs.list_outputs(pool, admin)} == {mine.id, theirs.id}
    assert [o.id for o in jobs.list_outputs(pool, admin, user_id=other_analyst.id)] == [theirs.id]
    assert jobs.get_output(pool, theirs.id, admin).id == theirs.id


def test_list_filters_and_keyset_pages(pool, analyst):
    made = [create_test_llm_output(pool, analyst, model="offline/echo") for _ in range(5)]
    failed = create_test_llm_output(pool, analyst, status="failed")
    first = jobs.list_outputs(pool, analyst, limit=4)
    assert [o.id for o in first] == [failed.id, *[m.id for m in made[::-1][:3]]]
    rest = jobs.list_outputs(pool, analyst, limit=4, before_id=first[-1].id)
    assert [o.id for o in rest] == [made[1].id, made[0].id]
    assert [o.id for o in jobs.list_outputs(pool, analyst, status="failed")] == [failed.id]
    assert jobs.list_outputs(pool, analyst, template="nope") == []
    assert len(jobs.list_outputs(pool, analyst, template=TEMPLATE)) == 6
    with pytest.raises(InvalidInput):
        jobs.list_outputs(pool, analyst, limit=0)


def test_feedback_records_every_change(pool, analyst):
    out = create_test_llm_output(pool, analyst)
    first = feedback.set_feedback(pool, out.id, analyst, "thumbs_up")
    second = feedback.set_feedback(pool, out.id, analyst, "thumbs_down")
    feedback.set_feedback(pool, out.id, analyst, "none")
    assert (first.old_value, first.new_value) == ("none", "thumbs_up")
    assert (second.old_value, second.new_value) == ("thumbs_up", "thumbs_down")
    with pool.connection() as conn:
        history = outputs_db.feedback_history(conn, out.id)
    assert [(e.old_value, e.new_value) for e in history] == [
        ("none", "thumbs_up"),
        ("thumbs_up", "thumbs_down"),
        ("thumbs_down", "none"),
    ]
    assert jobs.get_output(pool, out.id, analyst).feedback == "none"


def test_feedback_permissions_and_state(pool, analyst, other_analyst, admin):
    out = create_test_llm_output(pool, analyst)
    with pytest.raises(NotFound):
        feedback.set_feedback(pool, out.id, other_analyst, "thumbs_up")
    event = feedback.set_feedback(pool, out.id, admin, "thumbs_down")
    assert event.user_id == admin.id
    pending = create_test_llm_output(pool, analyst, status="pending")
    with pytest.raises(Conflict, match="only completed outputs"):
        feedback.set_feedback(pool, pending.id, analyst, "thumbs_up")
    with pytest.raises(InvalidInput):
        feedback.set_feedback(pool, out.id, analyst, "meh")


def test_re_run_copies_parameters_and_links_parent(pool, analyst, other_analyst):
    out = create_test_llm_output(pool, analyst, format="json", context={"concept": "sets"})
    sub = jobs.re_run(pool, out.id, analyst)
    child = jobs.get_output(pool, sub.output_id, analyst)
    assert (child.kind, child.parent_id, child.status) == ("re_run", out.id, "pending")
    assert (child.template, child.model, child.context, child.format, child.queue) == (
        out.template,
        out.model,
        out.context,
        out.format,
        out.queue,
    )
    with pytest.raises(NotFound):
        jobs.re_run(pool, out.id, other_analyst)


def test_regenerate_merges_context_and_replaces_model_format(pool, analyst, provider):
    out = create_test_llm_output(pool, analyst, template="{{a}} {{b}}", context={"a": 1, "b": 2})
    sub = jobs.regenerate(
        pool, out.id, analyst, new_context={"b": 3}, new_model="openai/other", new_format="markdown"
    )
    child = jobs.get_output(pool, sub.output_id, analyst)
    assert child.context == {"a": 1, "b": 3}
    assert (child.model, child.format, child.kind, child.parent_id) == (
        "openai/other",
        "markdown",
        "regenerate",
        out.id,
    )
    with pool.connection() as conn:
        assert [c.id for c in outputs_db.output_children(conn, out.id)] == [child.id]


def test_regenerate_with_invalid_model_writes_nothing(pool, analyst):
    out = create_test_llm_output(pool, analyst)
    with pytest.raises(InvalidInput) as caught:
        jobs.regenerate(pool, out.id, analyst, new_model="gpt-4o")
    assert caught.value.field == "model"
    assert _count(pool) == (1, 0)


async def test_lineage_runs_end_to_end(pool, analyst, run_worker):
    sub = jobs.submit(
        pool, user=analyst, template=TEMPLATE, context={"concept": "a"}, model="offline/echo"
    )
    await run_worker()
    rerun = jobs.re_run(pool, sub.output_id, analyst)
    regen = jobs.regenerate(pool, sub.output_id, analyst, new_context={"concept": "b"})
    await run_worker()
    first = jobs.get_output(pool, sub.output_id, analyst)
    again = jobs.get_output(pool, rerun.output_id, analyst)
    changed = jobs.get_output(pool, regen.output_id, analyst)
    assert again.parsed_output == first.parsed_output
    assert changed.prompt == "Explain b to a beginner" and changed.status == "completed"
