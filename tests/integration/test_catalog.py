"""The model catalog: workers publish the models they can serve; the CLI, the API and the
dashboard check a model against it without litellm or the provider keys."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import psycopg
import pytest
from psycopg.rows import dict_row

from db import catalog as catalog_db
from db.catalog import CatalogModel
from tasks import budgets
from tasks import outputs as jobs
from tasks.errors import BudgetExceeded, InvalidInput
from tasks.llm import catalog
from tests.conftest import ROOT

GPT = CatalogModel(
    model="gpt-4o",
    provider="openai",
    listed=True,
    input_cost_per_token=Decimal("0.0000025"),
    output_cost_per_token=Decimal("0.00001"),
)
WHOLE_OPENAI = CatalogModel(model="openai/*", provider="openai", listed=False)


def _publish(database_url: str, *models: CatalogModel, worker: str = "w1") -> None:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        catalog_db.publish_sync(conn, worker, "host-a", list(models))


def _age(database_url: str, seconds: int, worker: str = "w1") -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE llm_catalog_workers SET seen_at = now() - make_interval(secs => %s) "
            "WHERE worker = %s",
            (seconds, worker),
        )


def _submit(pool, user, model: str):
    return jobs.submit(pool, user=user, template="Explain {{c}}", model=model, context={"c": "x"})


def test_front_ends_do_not_import_litellm():
    # What the CLI, the API and the dashboard's shared modules load: validating and queueing a
    # job included, never litellm (seconds and over 100 MiB to import).
    modules = [
        "api.app",
        "tasks.cli.main",
        "dashboard.deps",
        "dashboard.forms",
        "dashboard.ui",
        "tasks.outputs",
        "tasks.batches",
        "tasks.comparisons",
        "tasks.agents",
        "tasks.budgets",
        "tasks.limits",
        "tasks.llm.catalog",
    ]
    code = (
        f"import sys\nfor m in {modules!r}: __import__(m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'litellm' "
        "or m in ('tasks.llm.calls', 'tasks.llm.offline')))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]", found.stdout


def test_offline_models_need_no_worker(pool, analyst):
    with pool.connection() as conn:
        assert catalog_db.live_workers(conn, 60) == 0
        assert catalog.check_model(conn, "offline/verbose").offline
    assert _submit(pool, analyst, "offline/brief").output_id > 0
    assert [m.name for m in catalog.usable_models(pool)] == list(catalog.OFFLINE_NAMES)


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("openai/gpt-4o", ["no worker serves 'openai/gpt-4o'", "no worker is running"]),
        ("gpt-4o", ["unknown model 'gpt-4o', or no worker serves it"]),
        ("offline/nope", ["unknown offline model"]),
        (" ", ["is empty"]),
        ("x" * 201, ["at most 200 characters"]),
        ("openai/*", ["no `*`"]),
        ("openai/gpt 4o", ["no spaces"]),
        ("offline/echo\x00", ["must be a model name"]),
    ],
)
def test_a_model_no_worker_serves_is_refused_in_words(pool, analyst, model, words):
    with pytest.raises(InvalidInput) as caught:
        _submit(pool, analyst, model)
    assert caught.value.field == "model"
    assert all(w in caught.value.message for w in words), caught.value.message
    with pool.connection() as conn:
        written = conn.execute("SELECT count(*) AS n FROM llm_outputs").fetchone()["n"]
    assert written == 0


def test_a_live_worker_serves_its_models_by_name_and_provider(database_url, pool, analyst):
    _publish(database_url, GPT, WHOLE_OPENAI)
    assert _submit(pool, analyst, "gpt-4o").output_id
    # any name of a provider the worker holds a key for, mapped or not
    assert _submit(pool, analyst, "openai/some-new-model").output_id
    with pytest.raises(InvalidInput, match="start one with its provider's key"):
        _submit(pool, analyst, "anthropic/claude-3-5-haiku-latest")
    assert [m.name for m in catalog.usable_models(pool)] == [*catalog.OFFLINE_NAMES, "gpt-4o"]
    assert catalog.default_model(pool) == "offline/echo"


def test_a_worker_not_seen_lately_serves_nothing(database_url, pool, analyst):
    _publish(database_url, GPT)
    _age(database_url, int(catalog.fresh_within()) + 5)
    with pytest.raises(InvalidInput, match="no worker is running"):
        _submit(pool, analyst, "gpt-4o")
    assert "gpt-4o" not in [m.name for m in catalog.usable_models(pool)]
    _publish(database_url, GPT, worker="w2")  # another worker starts
    assert _submit(pool, analyst, "gpt-4o").output_id


def test_the_default_model_is_the_configured_one_once_served(database_url, pool, settings_env):
    settings_env(DEFAULT_MODEL="gpt-4o")
    assert catalog.default_model(pool) == "offline/echo"
    _publish(database_url, GPT)
    assert catalog.default_model(pool) == "gpt-4o"


def test_a_budget_prices_a_job_with_the_published_prices(database_url, pool, analyst):
    _publish(database_url, GPT)
    budgets.set_budget(pool, analyst.name, "0.001")
    user = analyst.model_copy(update={"monthly_budget": Decimal("0.001")})
    with pool.connection() as conn:
        # about 1,000 prompt tokens and 500 answer tokens at the published prices: $0.0075
        with pytest.raises(BudgetExceeded, match=r"may cost about \$0\.007"):
            budgets.ensure_within_budget(conn, user, "gpt-4o", "x" * 4000, {})
        budgets.ensure_within_budget(conn, user, "offline/echo", "x" * 4000, {})


async def test_a_worker_publishes_at_start_and_withdraws_at_stop(
    database_url, pool, run_worker, catalog_of_this_process
):
    seen: list[list[str]] = []

    def published() -> bool:
        with pool.connection() as conn:
            rows = conn.execute(
                "SELECT m.model FROM llm_catalog_models m JOIN llm_catalog_workers w "
                "USING (worker) WHERE w.host <> 'tests' ORDER BY 1"
            ).fetchall()
        seen.append([r["model"] for r in rows])
        return bool(seen[-1])

    await run_worker(until=published, timeout=20)
    assert set(catalog.OFFLINE_NAMES) <= set(seen[-1])
    with pool.connection() as conn:
        left = conn.execute("SELECT count(*) AS n FROM llm_catalog_workers").fetchone()["n"]
    assert left == 0


async def test_a_pruned_entry_is_published_again_and_old_ones_go(database_url, pool, opened_app):
    _publish(database_url, GPT, worker="killed-long-ago")
    _age(database_url, int(catalog.PRUNE_AFTER) + 60, worker="killed-long-ago")
    _publish(database_url, GPT, worker="alive")
    assert await catalog.prune(opened_app.connector.pool) == 1
    with pool.connection() as conn:
        names = [r["worker"] for r in conn.execute("SELECT worker FROM llm_catalog_workers")]
    assert names == ["alive"]


def test_a_worker_with_a_key_serves_its_provider(monkeypatch, database_url, pool, analyst):
    # What a worker holding an OpenAI key publishes (litellm's view, in the worker's process):
    # the provider as a whole, its mapped models with litellm's prices, none of Anthropic's.
    from tasks.llm.calls import served_models

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    served = {m.model: m for m in served_models()}
    assert "openai/*" in served and "anthropic/*" not in served
    assert served["gpt-4o"].input_cost_per_token and served["gpt-4o"].listed
    assert served["openai/gpt-4o"].output_cost_per_token == served["gpt-4o"].output_cost_per_token
    assert not served["openai/gpt-4o"].listed
    _publish(database_url, *served.values())
    with pool.connection() as conn:
        info = catalog.check_model(conn, "openai/gpt-4o-mini")
    assert info.input_cost_per_token and not info.offline


def test_the_cli_lists_what_workers_serve(database_url):
    from tests.integration.test_cli import llmjobs

    _publish(database_url, GPT)
    out = json.loads(llmjobs("models").stdout)
    assert [m["name"] for m in out] == [*catalog.OFFLINE_NAMES, "gpt-4o"]
    assert out[-1]["input_cost_per_token"] == pytest.approx(0.0000025)
