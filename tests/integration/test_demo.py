"""`llmjobs seed-demo`: a finished, realistic month marked as demo, written once, deterministic,
and removed without touching anything else."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from tasks import analytics, comparisons, demo, feedback, judges, templates
from tasks import outputs as jobs
from tasks.errors import Conflict
from tasks.testing import create_test_llm_output

NOW = datetime(2024, 11, 20, 15, 30, tzinfo=UTC)


def _one(pool, sql: str, params: dict | None = None):
    with pool.connection() as conn:
        return conn.execute(sql, params or {}).fetchone()


def _all(pool, sql: str) -> list[dict]:
    with pool.connection() as conn:
        return conn.execute(sql).fetchall()


def test_seed_writes_a_finished_realistic_month(pool, admin):
    summary = demo.seed(pool, now=NOW)
    assert summary.outputs >= 300
    counts = _one(
        pool,
        "SELECT count(*) AS n, count(DISTINCT model) AS models, count(DISTINCT format) AS formats,"
        " count(*) FILTER (WHERE status NOT IN ('completed', 'failed')) AS unfinished,"
        " count(*) FILTER (WHERE NOT demo) AS unmarked,"
        " count(*) FILTER (WHERE kind = 're_run' AND parent_id IS NOT NULL) AS re_runs,"
        " count(*) FILTER (WHERE kind = 'regenerate' AND parent_id IS NOT NULL) AS regenerations,"
        " count(*) FILTER (WHERE status = 'failed') AS failed,"
        " min(created_at) AS first, max(created_at) AS last,"
        " (SELECT count(*) FROM procrastinate_jobs) AS jobs FROM llm_outputs",
    )
    assert counts["n"] == summary.outputs
    assert counts["models"] >= 4 and counts["formats"] == 4
    assert counts["unfinished"] == 0 and counts["jobs"] == 0 and counts["unmarked"] == 0
    assert counts["re_runs"] >= 10 and counts["regenerations"] >= 5
    assert counts["failed"] == summary.failed >= 5
    assert NOW - timedelta(days=30) <= counts["first"] and counts["last"] < NOW
    assert (counts["last"] - counts["first"]).days >= 25

    models = {r["model"]: r for r in _all(pool, _BY_MODEL)}
    assert {"openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-20241022", "offline/brief"} <= set(
        models
    )
    mini = models["openai/gpt-4o-mini"]
    assert mini["cost"] > 0 and mini["latency"] > 500 and mini["tokens"] > 50
    assert models["offline/brief"]["cost"] == 0 and models["offline/brief"]["latency"] < 100
    assert all(r["up"] and r["down"] for r in models.values())  # thumbs both ways everywhere
    assert models["openai/gpt-4o-mini"]["up_rate"] > models["offline/flaky"]["up_rate"]
    errors = [
        r["error_message"]
        for r in _all(pool, "SELECT error_message FROM llm_outputs WHERE status = 'failed'")
    ]
    assert any(e.startswith("RateLimitError: litellm.RateLimitError:") for e in errors)

    assert sorted(v.version for v in templates.versions(pool, "Ticket summary (demo)")) == [1, 2]
    assert len(templates.versions(pool, "Product description (demo)")) == 3
    picks = _one(pool, "SELECT count(DISTINCT comparison_id) AS n FROM preferences")
    assert picks["n"] == summary.comparisons >= 3
    batch = _one(
        pool,
        "SELECT count(*) AS rows, count(*) FILTER (WHERE o.status = 'completed') AS done"
        " FROM batches AS b JOIN llm_outputs AS o ON o.batch_id = b.id",
    )
    assert batch["rows"] >= 10 and batch["done"] == batch["rows"] - 1

    # Analytics reads the demo month from the rollup, as an admin sees it
    assert _one(pool, "SELECT count(*) AS n FROM analytics_rollup")["n"] > 0
    flt = analytics.output_filter(start=(NOW - timedelta(days=31)).date(), end=NOW.date())
    totals = analytics.totals(analytics.model_quality(pool, admin, flt))
    assert totals.outputs == summary.outputs
    assert totals.thumbs_up == summary.thumbs_up


def test_seed_explains_its_feedback_and_judges_a_batch(pool, admin):
    summary = demo.seed(pool, now=NOW)
    feedback = _one(
        pool,
        "SELECT count(*) FILTER (WHERE feedback = 'thumbs_down') AS down,"
        " count(*) FILTER (WHERE feedback = 'thumbs_down' AND feedback_reasons <> '{}') AS why,"
        " count(*) FILTER (WHERE feedback = 'thumbs_up' AND 'great' = ANY(feedback_reasons))"
        "   AS great,"
        " count(*) FILTER (WHERE feedback_comment IS NOT NULL) AS comments,"
        " count(*) FILTER (WHERE corrected_answer IS NOT NULL) AS corrected,"
        " count(*) FILTER (WHERE feedback_reasons <> '{}') AS with_reasons"
        " FROM llm_outputs",
    )
    assert feedback["why"] > feedback["down"] / 2  # most thumbs-down give a reason
    assert feedback["great"] >= 3 and feedback["comments"] >= 3 and feedback["corrected"] >= 1
    assert (feedback["with_reasons"], feedback["comments"], feedback["corrected"]) == (
        summary.with_reasons,
        summary.comments,
        summary.corrected,
    )
    # every reason is on the list, and each event keeps what it set
    unknown = _one(
        pool,
        "SELECT count(*) AS n FROM llm_outputs, unnest(feedback_reasons) AS r(name)"
        " WHERE r.name NOT IN (SELECT name FROM feedback_reasons)",
    )
    assert unknown["n"] == 0
    events = _one(
        pool,
        "SELECT count(*) FILTER (WHERE e.reasons <> o.feedback_reasons"
        "   OR e.comment IS DISTINCT FROM o.feedback_comment"
        "   OR e.corrected_answer IS DISTINCT FROM o.corrected_answer) AS differ,"
        " count(*) FILTER (WHERE 'reasons' = ANY(e.changed)) AS with_reasons"
        " FROM feedback_events AS e JOIN llm_outputs AS o ON o.id = e.output_id",
    )
    assert events["differ"] == 0 and events["with_reasons"] > 0

    # one demo judge, its verdicts ordinary json outputs of a known model, valid against a schema
    verdicts = _all(
        pool,
        "SELECT j.demo AS judge_demo, jo.demo, jo.model, jo.format, jo.status, jo.schema_valid,"
        " jo.json_schema IS NOT NULL AS has_schema, jo.feedback AS judge_feedback,"
        " jo.parsed_output ->> 'verdict' AS verdict, jo.parsed_output ->> 'reason' AS reason,"
        " o.feedback, o.batch_id"
        " FROM judge_verdicts AS v JOIN judges AS j ON j.id = v.judge_id"
        " JOIN llm_outputs AS jo ON jo.id = v.judge_output_id"
        " JOIN llm_outputs AS o ON o.id = v.output_id",
    )
    assert len(verdicts) == summary.judged >= 40
    assert {
        (v["judge_demo"], v["demo"], v["model"], v["format"], v["status"]) for v in verdicts
    } == {(True, True, demo.JUDGE_MODEL, "json", "completed")}
    assert all(v["schema_valid"] and v["has_schema"] and v["reason"] for v in verdicts)
    assert {v["judge_feedback"] for v in verdicts} == {"none"}  # verdicts are not thumbs
    assert any(v["batch_id"] is not None for v in verdicts)  # the batch is judged
    rated = [v for v in verdicts if v["feedback"] != "none"]
    agree = sum((v["verdict"] == "pass") == (v["feedback"] == "thumbs_up") for v in rated)
    assert len(rated) >= 30 and 0.6 < agree / len(rated) < 1  # mostly, not always
    # calibration is meaningful: agreement beyond chance, per model too
    [judge] = judges.list_judges(pool, admin)
    calibrated = judges.calibration(pool, judge.id, admin)
    assert calibrated.overall.count == len(rated)
    assert calibrated.overall.agreement == pytest.approx(agree / len(rated))
    assert 0.2 < calibrated.overall.kappa < 1
    assert len(calibrated.per_model) >= 4

    queue = _one(
        pool,
        "SELECT q.demo, count(i.*) AS items, (SELECT count(*) FROM review_marks AS m"
        "   WHERE m.queue_id = q.id) AS marked FROM review_queues AS q"
        " JOIN review_items AS i ON i.queue_id = q.id GROUP BY q.id",
    )
    assert queue["demo"] and queue["items"] == summary.review_items >= 4
    assert queue["marked"] == queue["items"] // 2

    # the Analytics page's reasons are those of the demo month
    flt = analytics.output_filter(start=(NOW - timedelta(days=31)).date(), end=NOW.date())
    by_model = analytics.reasons_by_model(pool, admin, flt)
    assert sum({r.model: r.basis for r in by_model}.values()) == feedback["why"]
    assert {r.model for r in by_model} >= {"offline/flaky", "openai/gpt-4o-mini"}


_BY_MODEL = """
SELECT model, sum(cost) AS cost, avg(latency_ms) AS latency, avg(completion_tokens) AS tokens,
       count(*) FILTER (WHERE feedback = 'thumbs_up') AS up,
       count(*) FILTER (WHERE feedback = 'thumbs_down') AS down,
       count(*) FILTER (WHERE feedback = 'thumbs_up')::float
           / nullif(count(*) FILTER (WHERE feedback <> 'none'), 0) AS up_rate
  FROM llm_outputs GROUP BY model
"""

_SNAPSHOT = (
    "SELECT model, kind, status, format, feedback, created_at, cost, latency_ms, raw_response"
    " FROM llm_outputs ORDER BY id"
)


def test_seeding_twice_is_refused_and_the_same_seed_gives_the_same_month(pool):
    demo.seed(pool, now=NOW)
    first = _all(pool, _SNAPSHOT)
    with pytest.raises(Conflict, match="already loaded"):
        demo.seed(pool, now=NOW)
    assert len(_all(pool, _SNAPSHOT)) == len(first)
    demo.remove(pool)
    demo.seed(pool, now=NOW)
    assert _all(pool, _SNAPSHOT) == first


def test_remove_deletes_exactly_the_demo_rows(pool, analyst, admin):
    mine = jobs.submit(
        pool, user=analyst, template="Hi {{ x }}", context={"x": "a"}, model="offline/echo"
    )
    # someone's own judge, verdict and review queue stay
    rated = create_test_llm_output(pool, analyst, feedback="thumbs_down")
    feedback.set_feedback(pool, rated.id, analyst, reasons=["wrong"], comment="no")
    verdict = create_test_llm_output(pool, admin, format="json", raw_response='{"verdict": "fail"}')
    with pool.connection() as conn:
        judge = conn.execute(
            "INSERT INTO judges (name, model, rubric) VALUES ('mine', 'offline/echo', 'r')"
            " RETURNING id"
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO judge_verdicts (judge_id, output_id, judge_output_id) VALUES (%s, %s, %s)",
            (judge, rated.id, verdict.id),
        )
        queue = conn.execute(
            "INSERT INTO review_queues (name, owner_id) VALUES ('mine', %s) RETURNING id",
            (analyst.id,),
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO review_items (queue_id, output_id, position) VALUES (%s, %s, 1)",
            (queue, rated.id),
        )
        conn.execute(
            "INSERT INTO review_marks (queue_id, output_id, user_id, feedback)"
            " VALUES (%s, %s, %s, 'thumbs_down')",
            (queue, rated.id, analyst.id),
        )
    templates.save_template(pool, analyst, "My template", "Hello {{ name }}")
    comparisons.submit_comparison(
        pool,
        user=analyst,
        template="Say {{ w }}",
        context={"w": "hi"},
        models=["offline/echo", "offline/brief"],
    )
    before = _one(pool, _TABLES)
    demo.seed(pool, now=NOW)
    assert demo.is_loaded(pool)
    removed = demo.remove(pool)
    assert removed["outputs"] > 300 and removed["users"] == 1 and removed["templates"] == 2
    assert removed["judges"] == 1 and removed["review_queues"] == 1
    assert _one(pool, _TABLES) == before
    assert jobs.get_output(pool, mine.output_id, analyst).status == "pending"
    assert not demo.is_loaded(pool)
    assert demo.remove(pool)["outputs"] == 0  # nothing left to remove


_TABLES = """
SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM llm_outputs) AS outputs,
       (SELECT count(*) FROM prompt_templates) AS templates,
       (SELECT count(*) FROM prompt_template_versions) AS versions,
       (SELECT count(*) FROM comparisons) AS comparisons, (SELECT count(*) FROM batches) AS batches,
       (SELECT count(*) FROM preferences) AS preferences,
       (SELECT count(*) FROM feedback_events) AS feedback_events,
       (SELECT count(*) FROM procrastinate_jobs) AS jobs,
       (SELECT count(*) FROM judges) AS judges,
       (SELECT count(*) FROM judge_verdicts) AS judge_verdicts,
       (SELECT count(*) FROM review_queues) AS review_queues,
       (SELECT count(*) FROM review_items) AS review_items,
       (SELECT count(*) FROM review_marks) AS review_marks,
       (SELECT count(*) FROM llm_outputs WHERE feedback_reasons <> '{}') AS with_reasons
"""


def test_a_user_named_demo_blocks_seeding(pool):
    from tasks import accounts

    accounts.create_user(pool, "demo")
    with pytest.raises(Conflict, match="user named 'demo'"):
        demo.seed(pool, now=NOW)


def test_hint_only_on_an_empty_database(pool):
    assert "seed-demo" in demo.hint_if_empty(pool)
    demo.seed(pool, now=NOW)
    assert demo.hint_if_empty(pool) is None


def test_the_command_seeds_refuses_again_and_removes(database_url, pool):
    from tests.integration.test_cli import llmjobs

    first = llmjobs("seed-demo")
    assert first.returncode == 0, first.stderr
    seeded = json.loads(first.stdout)
    assert seeded["outputs"] >= 300 and seeded["user"] == "demo"
    again = llmjobs("seed-demo")
    assert again.returncode == 1 and "already loaded" in again.stderr
    removed = llmjobs("seed-demo", "--remove")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["removed"]["outputs"] == seeded["outputs"]
    assert _one(pool, "SELECT count(*) AS n FROM llm_outputs")["n"] == 0


def test_hint_from_a_url_and_never_an_error(database_url):
    assert "seed-demo" in demo.hint_if_empty(database_url)
    assert demo.hint_if_empty("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1") is None


def test_run_says_how_to_load_demo_data_on_an_empty_database(database_url, monkeypatch, capsys):
    import sys

    from tasks.cli import runner
    from tests.integration.test_full_run import _free_port

    monkeypatch.setattr(runner.subprocess, "run", lambda *a, **k: None)  # migrated already
    monkeypatch.setattr(runner.signal, "signal", lambda *a: None)  # pytest keeps its handlers
    monkeypatch.setattr(
        runner, "commands", lambda dashboard, api: {"worker": [sys.executable, "-c", "pass"]}
    )
    # free ports: another `make run` on this machine must not stop the run before its hint
    monkeypatch.setenv("LLMJOBS_API_PORT", str(_free_port()))
    monkeypatch.setenv("LLMJOBS_DASHBOARD_PORT", str(_free_port()))
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    try:
        runner.run()
    finally:  # the run's logging wrote to this test's captured stderr, closed after it
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)
    assert "llmjobs seed-demo" in capsys.readouterr().err
