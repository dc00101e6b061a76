"""`llmjobs seed-demo`: a finished, realistic month marked as demo, written once, deterministic,
and removed without touching anything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tasks import analytics, comparisons, demo, templates
from tasks import outputs as jobs
from tasks.cli.main import main
from tasks.errors import Conflict

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
       (SELECT count(*) FROM procrastinate_jobs) AS jobs
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


def test_the_command_seeds_refuses_again_and_removes(database_url, pool, capsys):
    assert main(["seed-demo"]) == 0
    seeded = json.loads(capsys.readouterr().out)
    assert seeded["outputs"] >= 300 and seeded["user"] == "demo"
    assert main(["seed-demo"]) == 1
    assert "already loaded" in capsys.readouterr().err
    assert main(["seed-demo", "--remove"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"]["outputs"] == seeded["outputs"]
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
    runner.run()
    assert "llmjobs seed-demo" in capsys.readouterr().err
