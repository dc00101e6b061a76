"""Provider limits in the dashboard (AppTest): the Limits page lists, sets and clears limits for
admins only, refuses bad values naming the field and writing nothing; the Queues page shows each
limited model's use; a pending output says which limit it waits for; a batch says which limit
paces it and when it will be done."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import streamlit as st

from dashboard import ui
from tasks import batches, limits
from tasks import outputs as jobs
from tasks.config import LLM_TASK

LIMITS = "dashboard/limits.py"
QUEUES = "dashboard/queues.py"
DETAIL = "dashboard/output_detail.py"
BATCHES = "dashboard/batches.py"
SAVE = "FormSubmitter:limits_set-Save"
MODEL = "offline/echo"  # any model name can be limited; this one needs no provider


def _expire_caches() -> None:
    """As the pages' 2 s caches expire: the next run reads what another process changed."""
    st.cache_data.clear()


def _texts(elements) -> str:
    """The elements' text as a person reads it (markdown escapes dropped)."""
    return " ".join(str(e.value) for e in elements).replace("\\", "")


def _links(at) -> list[str]:
    return [str(e.proto.label) for e in at.main.get("page_link")]


def _saved(pool) -> list[tuple]:
    return [
        (lim.pattern, lim.rpm, lim.tpm, lim.max_concurrent, lim.source, lim.updated_by)
        for lim in limits.list_limits(pool)
    ]


def _fill(at, model: str, rpm=None, tpm=None, concurrent=None) -> None:
    at.text_input(key="limits_set_model").input(model)
    for field, value in (("rpm", rpm), ("tpm", tpm), ("concurrent", concurrent)):
        at.number_input(key=f"limits_set_{field}").set_value(value)
    at.button(key=SAVE).click().run()
    assert not at.exception


def _form(at) -> tuple:
    return (
        at.text_input(key="limits_set_model").value,
        *(at.number_input(key=f"limits_set_{f}").value for f in ("rpm", "tpm", "concurrent")),
    )


def _submit(pool, user, n: int, model: str = MODEL) -> list[int]:
    return [
        jobs.submit(pool, user=user, template="Hi {{n}}", context={"n": i}, model=model).output_id
        for i in range(n)
    ]


def _fetch(pool, count: int) -> list[int]:
    """Take jobs as a worker's fetch does (capacity taken for limited models); their outputs are
    then processing, as the worker marks them."""
    with pool.connection() as conn:
        worker = conn.execute("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
        taken = [
            r["output_id"]
            for r in conn.execute(
                "SELECT ((j.job).args->>'output_id')::bigint AS output_id"
                "  FROM llmjobs_fetch_jobs(NULL, %s, %s, %s, 60, 30) AS j",
                (worker.fetchone()["id"], count, LLM_TASK),
            )
        ]
        conn.execute("UPDATE llm_outputs SET status = 'processing' WHERE id = ANY(%s)", (taken,))
    return taken


# The Limits page.


def test_an_analyst_cannot_open_the_limits_page(app_as, pool, analyst, admin):
    limits.set_limit(pool, admin, "openai/", rpm=50)
    at = app_as(analyst, LIMITS)
    assert not at.exception
    assert "Admins only" in _texts(at.error)
    assert not at.main.button and not at.text_input and not at.dataframe
    assert "openai/" not in _texts(at.main.markdown)


def test_an_admin_sets_a_limit_and_the_form_is_emptied(app_as, pool, admin):
    at = app_as(admin, LIMITS)
    assert not at.exception
    assert "No limits yet" in _texts(at.info)
    text = _texts(at.markdown) + _texts(at.caption)
    assert "A change applies to running workers at once" in text
    assert "one you clear comes back when a worker restarts, unless an admin sets that" in text

    _fill(at, "  openai/gpt-4o ", rpm=500, tpm=30_000)
    assert _saved(pool) == [("openai/gpt-4o", 500, 30_000, None, "admin", "root-admin")]
    assert "Limit openai/gpt-4o set" in _texts(at.success)
    assert _form(at) == ("", None, None, None)
    [table] = [d.value for d in at.dataframe]
    assert table.to_dict("records") == [
        {
            "Model or prefix": "openai/gpt-4o",
            "Requests per minute": "500",
            "Tokens per minute": "30,000",
            "Calls in flight": "–",
            "Source": "admin",
            "Set by": "root-admin",
            "When": table["When"][0],
        }
    ]
    assert table["When"][0].endswith(" UTC")

    # a prefix, then the same prefix again: its three caps are replaced
    _fill(at, "anthropic/", concurrent=4)
    _fill(at, "anthropic/", rpm=50)
    assert _saved(pool)[0] == ("anthropic/", 50, None, None, "admin", "root-admin")
    assert [d.value["Model or prefix"].tolist() for d in at.dataframe] == [
        ["anthropic/", "openai/gpt-4o"]
    ]


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"model": "open ai", "rpm": 5}, "Model or prefix: the model or prefix must be a model"),
        ({"model": "", "rpm": 5}, "Model or prefix: the model or prefix is empty"),
        ({"model": "openai/x", "rpm": 0}, "Requests per minute (rpm): rpm must be from 1 to"),
        ({"model": "openai/x", "tpm": -5}, "Tokens per minute (tpm): tpm must be from 1 to"),
        (
            {"model": "openai/x", "rpm": 5, "concurrent": 100_001},
            "Calls in flight (concurrent): concurrent must be from 1 to 100,000",
        ),
        ({"model": "openai/x"}, "Give at least one cap"),
    ],
)
def test_bad_values_are_refused_naming_the_field_and_nothing_is_written(
    app_as, pool, admin, values, said
):
    at = app_as(admin, LIMITS)
    _fill(at, **values)
    assert said in _texts(at.error)
    assert not at.success
    assert _saved(pool) == []
    # what was typed stays, to be corrected
    typed = (values["model"], *(values.get(f) for f in ("rpm", "tpm", "concurrent")))
    assert _form(at) == typed


def test_clearing_asks_first_and_an_environment_limit_is_said_to_come_back(app_as, pool, admin):
    limits.set_limit(pool, admin, "openai/", rpm=50)
    with pool.connection() as conn:  # as a worker writes LLMJOBS_MODEL_LIMITS at its start
        conn.execute(
            "INSERT INTO llmjobs_model_limits (pattern, tpm, source, updated_by)"
            " VALUES ('anthropic/', 9000, 'env', 'LLMJOBS_MODEL_LIMITS')"
        )
    at = app_as(admin, LIMITS)
    table = at.dataframe[0].value
    assert table[["Model or prefix", "Source", "Set by"]].values.tolist() == [
        ["anthropic/", "env", "LLMJOBS_MODEL_LIMITS"],
        ["openai/", "admin", "root-admin"],
    ]

    at.selectbox(key="limits_chosen").set_value("anthropic/").run()
    at.button(key="limits_clear").click().run()
    assert not at.exception
    asked = _texts(at.warning)
    assert "Clear the limit of anthropic/?" in asked
    assert "it comes back when a worker restarts" in asked
    assert len(_saved(pool)) == 2  # nothing cleared yet
    at.button(key="limits_clear_no").click().run()
    assert not at.warning and len(_saved(pool)) == 2

    at.selectbox(key="limits_chosen").set_value("openai/").run()
    at.button(key="limits_clear").click().run()
    asked = _texts(at.warning)
    assert "Clear the limit of openai/?" in asked and "comes back" not in asked
    at.button(key="limits_clear_yes").click().run()
    assert not at.exception
    assert "Limit openai/ cleared" in _texts(at.success)
    assert [p[0] for p in _saved(pool)] == ["anthropic/"]
    assert not at.warning
    assert at.dataframe[0].value["Model or prefix"].tolist() == ["anthropic/"]


def test_edit_copies_a_limit_into_the_form_and_saving_makes_it_the_admins(app_as, pool, admin):
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO llmjobs_model_limits (pattern, rpm, tpm, source, updated_by)"
            " VALUES ('anthropic/', 50, 9000, 'env', 'LLMJOBS_MODEL_LIMITS')"
        )
    at = app_as(admin, LIMITS)
    at.button(key="limits_edit").click().run()
    assert _form(at) == ("anthropic/", 50, 9000, None)
    at.number_input(key="limits_set_rpm").set_value(80)
    at.button(key=SAVE).click().run()
    assert _saved(pool) == [("anthropic/", 80, 9000, None, "admin", "root-admin")]


# Their use, on the Queues page.


def test_queues_shows_each_limited_models_use(app_as, pool, analyst, admin):
    at = app_as(admin, QUEUES)
    assert "No provider limits" in _texts(at.caption)
    assert "Set a limit" in _links(at)

    limits.set_limit(pool, admin, MODEL, rpm=60, tpm=100_000, concurrent=5)  # a burst of 2
    limits.set_limit(pool, admin, "openai/", rpm=10)  # no model used yet
    _submit(pool, analyst, 3)
    assert len(_fetch(pool, 3)) == 2
    with pool.connection() as conn:
        tokens = conn.execute(
            "SELECT sum(tokens_estimated) AS n FROM llmjobs_model_calls"
        ).fetchone()["n"]
    _expire_caches()
    at = app_as(admin, QUEUES)
    assert not at.exception
    assert "Provider limits" in _texts(at.subheader)
    [table] = [t.value for t in at.table if t.value.index.name == "Model"]
    assert table.loc[MODEL].to_dict() == {
        "Limit": MODEL,
        "Requests, last minute": "2 / 60",
        "Tokens, last minute": f"{tokens:,} / 100,000",
        "In flight": "2 / 5",
        "Waiting jobs": 1,
        "429s, last hour": 0,
        "Paused until": "–",
        "Waiting for": "requests per minute",
    }
    assert table.loc["no model yet", "Limit"] == "openai/"

    # the provider answers 429: the model is paused for every worker
    with pool.connection() as conn:
        conn.execute("SELECT llmjobs_pause_model(%s, 120)", (MODEL,))
    _expire_caches()
    at = app_as(admin, QUEUES)
    row = next(t.value for t in at.table if t.value.index.name == "Model").loc[MODEL]
    assert row["429s, last hour"] == 1
    assert row["Waiting for"] == "paused after the provider answered 429"
    assert row["Paused until"].endswith(" left)") and " UTC (" in row["Paused until"]


# A pending output, and a batch.


def test_a_pending_output_says_which_limit_it_waits_for(app_as, pool, analyst, admin):
    first, second = _submit(pool, analyst, 2)
    at = app_as(analyst, DETAIL, id=str(second))
    assert "Queued: waiting for a worker." in _texts(at.info)

    limits.set_limit(pool, admin, "offline/", rpm=1)  # a burst of one call
    assert _fetch(pool, 2) == [first]
    at = app_as(analyst, DETAIL, id=str(second))
    assert not at.exception
    assert "Queued: waiting for the offline/ limit (requests per minute)." in _texts(at.info)
    assert "waiting spends no attempt" in _texts(at.info)

    with pool.connection() as conn:
        conn.execute("SELECT llmjobs_pause_model(%s, 120)", (MODEL,))
    at = app_as(analyst, DETAIL, id=str(second))
    said = _texts(at.info)
    assert (
        "Queued: waiting for the offline/ limit (paused after the provider answered 429) until"
        in said
    )


def test_a_batch_says_which_limit_paces_it_and_when_it_will_be_done(app_as, pool, analyst, admin):
    made = batches.submit_batch(
        pool,
        user=analyst,
        template="Hi {{ n }}",
        model=MODEL,
        rows=[{"n": str(i)} for i in range(120)],
    )
    at = app_as(analyst, BATCHES)
    assert "Paced by" not in _texts(at.caption)  # no limit

    limits.set_limit(pool, admin, MODEL, concurrent=3)
    _expire_caches()
    at = app_as(analyst, BATCHES)
    assert "Paced by" not in _texts(at.caption)  # calls in flight only: no pace to tell

    limits.set_limit(pool, admin, MODEL, rpm=60)
    _expire_caches()
    before = datetime.now(UTC)
    at = app_as(analyst, BATCHES)
    after = datetime.now(UTC)
    assert not at.exception
    [said] = [c.value.replace("\\", "") for c in at.caption if "Paced by" in c.value]
    assert said.startswith(
        f":material/speed: Paced by the {MODEL} limit (60 calls a minute): about 2 min left, "
        "done near "
    )
    # 120 rows at 60 a minute: two minutes after the page read the pace
    done = set()
    for moment in (before, after):
        finish = moment + timedelta(minutes=2)
        near = f"{finish:%H:%M} UTC"
        done.add(near if finish.date() == moment.date() else f"{finish:%Y-%m-%d} {near}")
    assert said.split("done near ")[1] in done
    assert batches.get_batch(pool, made.id, analyst).unfinished == 120


@pytest.mark.parametrize(
    ("rate", "words"),
    [
        (500, "500 calls a minute"),
        (1234.4, "1,234 calls a minute"),
        (9.96, "10 calls a minute"),
        (1.5, "1.5 calls a minute"),
        (1.0, "1 call a minute"),
        (0.25, "a call every 4 min"),
        (1 / 120, "a call every 2.0 h"),
    ],
)
def test_a_pace_in_words(rate, words):
    assert ui.calls_a_minute(rate) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (5, "under a minute"),
        (60, "1 min"),
        (359, "6 min"),
        (5399, "90 min"),
        (9000, "2.5 h"),
        (3 * 86400, "3 days"),
    ],
)
def test_a_time_left_in_words(seconds, words):
    assert ui.time_left(seconds) == words
