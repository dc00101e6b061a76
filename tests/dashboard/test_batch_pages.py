"""The Batches page (upload, bad rows by number, progress, cancel, retry failed, results), the
dataset exports on Outputs, "Use cache" on Submit, the cache note on an output and the cache hit
rate on Analytics."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import streamlit as st
from playwright.sync_api import expect, sync_playwright
from streamlit.runtime.media_file_manager import MediaFileManager

from db import outputs as outputs_db
from tasks import analytics, batches
from tasks import outputs as jobs
from tasks.admin import local_user
from tasks.testing import create_test_llm_output
from tests.e2e.conftest import CHROMIUM_ARGS, chromium, services  # noqa: F401 - fixtures
from tests.support.hostile import FORMULAS, NUMBER_AS_TEXT, echo, neutralised

BATCHES = "dashboard/batches.py"
OUTPUTS = "dashboard/outputs.py"
DETAIL = "dashboard/output_detail.py"
ANALYTICS = "dashboard/analytics.py"
CSV = b"name,topic\nAda,loops\nBob,sets\n"


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def _table(at, column: str) -> list[dict]:
    """The rows of the one table that has this column."""
    [table] = [d.value for d in at.dataframe if column in d.value.columns]
    return table.to_dict("records")


def _progress(at) -> list[str]:
    return [bar.proto.text for bar in at.get("progress")]


def _jobs(pool) -> dict[str, int]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT status, count(*) AS n FROM procrastinate_jobs GROUP BY status")
        return {r["status"]: r["n"] for r in rows}


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> Callable:
    """downloads(at, key): what the download button would hand the browser, made by the very
    callable the page registered for it (AppTest keeps no file behind a deferred download)."""
    made: dict[str, tuple[Callable, str | None]] = {}
    register = MediaFileManager.add_deferred

    def recording(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        file_id = register(self, data_callable, mimetype, coordinates, file_name, **kwargs)
        made[file_id] = (data_callable, file_name)
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", recording)

    def data(at, key: str, file_name: str | None = None) -> str:
        make, named = made[at.download_button(key=key).proto.deferred_file_id]
        assert file_name in (None, named)
        value = make()
        return value.decode() if isinstance(value, bytes) else value

    return data


def _uploader(at):
    """The batch file's uploader (its key changes once a file was submitted)."""
    [uploader] = at.get("file_uploader")
    return uploader


def _upload(at, name: str, content: bytes, template: str):
    _uploader(at).set_value((name, content, "text/plain")).run()
    at.text_area(key="batch_template").input(template).run()
    return at


async def test_upload_submit_then_progress_and_results(
    app_as, pool, analyst, run_worker, downloads
):
    at = app_as(analyst, BATCHES)
    assert not at.exception
    assert "No batches yet." in _texts(at.info)
    _upload(at, "people.csv", CSV, "Teach {{ name }} {{ topic }}")
    assert not at.exception
    assert "2 rows · columns: name, topic" in _texts(at.caption)
    assert _table(at, "topic") == [
        {"name": "Ada", "topic": "loops"},
        {"name": "Bob", "topic": "sets"},
    ]
    assert "Every variable is a column: name, topic." in _texts(at.caption)
    assert at.selectbox(key="batch_queue").value == "low"
    uploaded = _uploader(at).proto.id
    at.button(key="batch_submit").click().run()
    assert not at.exception

    [batch] = batches.list_batches(pool, analyst)
    assert (batch.name, batch.total, batch.queue, batch.columns) == (
        "people",
        2,
        "low",
        ["name", "topic"],
    )
    made = sorted(jobs.list_outputs(pool, analyst), key=lambda o: o.id)
    assert [o.context for o in made] == [
        {"name": "Ada", "topic": "loops"},
        {"name": "Bob", "topic": "sets"},
    ]
    assert all(o.job_id is not None and not o.use_cache for o in made)
    assert _jobs(pool) == {"todo": 2}
    assert f"**people** · #{batch.id} · offline/echo" in _texts(at.markdown)
    # the submitted file is let go, so a second click cannot send it again
    assert _uploader(at).proto.id != uploaded and not _uploader(at).value
    assert not [b for b in at.button if b.key == "batch_submit"]
    assert _progress(at) == ["0 completed · 0 failed · 2 pending of 2"]
    assert at.session_state[f"live:batch:{batch.id}"] is True  # its progress refreshes itself

    await run_worker()
    st.cache_data.clear()  # what the page's next refresh reads, without waiting for the ttl
    at.run()
    assert _progress(at) == ["2 completed · 0 failed · 0 pending of 2"]
    results = downloads(at, f"batch_csv_{batch.id}", f"batch-{batch.id}-results.csv")
    table = list(csv.DictReader(io.StringIO(results)))
    assert [(r["row"], r["name"], r["output"], r["status"]) for r in table] == [
        ("1", "Ada", "Echo: Teach Ada loops", "completed"),
        ("2", "Bob", "Echo: Teach Bob sets", "completed"),
    ]
    lines = downloads(at, f"batch_jsonl_{batch.id}").splitlines()
    assert [json.loads(line)["topic"] for line in lines] == ["loops", "sets"]


async def test_results_csv_keeps_formulas_as_text(
    app_as, pool, analyst, provider, run_worker, downloads
):
    provider.default = echo  # each answer repeats its row's value
    values = [*FORMULAS, NUMBER_AS_TEXT]
    batch = batches.submit_batch(
        pool,
        user=analyst,
        template="{{value}}",
        model="openai/m",
        rows=[{"value": value, "=note": "+x"} for value in values],
        columns=["value", "=note"],
    )
    await run_worker()
    at = app_as(analyst, BATCHES)
    assert not at.exception
    header, *cells = csv.reader(io.StringIO(downloads(at, f"batch_csv_{batch.id}")))
    assert header[:3] == ["row", "value", "'=note"]
    table = [dict(zip(header, row, strict=True)) for row in cells]
    written = [*map(neutralised, FORMULAS), NUMBER_AS_TEXT]
    assert [(r["value"], r["output"], r["'=note"]) for r in table] == [
        (cell, cell, "'+x") for cell in written
    ]
    lines = [json.loads(line) for line in downloads(at, f"batch_jsonl_{batch.id}").splitlines()]
    assert [(r["value"], r["output"], r["=note"]) for r in lines] == [
        (value, value, "+x") for value in values
    ]


def test_bad_rows_are_listed_by_number_and_nothing_is_queued(app_as, pool, analyst):
    rows = b'{"name": "Ada", "topic": "loops"}\n{"name": "Bob"}\n{"name": "Cy", "topic": "maps"}\n'
    at = app_as(analyst, BATCHES)
    _upload(at, "rows.jsonl", rows, "Teach {{ name }} {{ topic }} at {{ level }}")
    assert "Not a column of the file: level." in _texts(at.warning)
    at.text_area(key="batch_template").input("Teach {{ name }} {{ topic }}").run()
    assert not at.warning
    at.button(key="batch_submit").click().run()
    assert not at.exception
    assert "1 bad row: nothing was queued. Fix them" in _texts(at.error)
    assert _table(at, "message") == [
        {"row": 2, "field": "context", "message": "missing variables: topic"}
    ]
    assert batches.list_batches(pool, analyst) == []
    assert jobs.list_outputs(pool, analyst) == [] and _jobs(pool) == {}

    at.checkbox(key="batch_skip").check()
    at.text_input(key="batch_name").input("skipping")
    at.button(key="batch_submit").click().run()
    assert not at.exception
    [batch] = batches.list_batches(pool, analyst)
    assert (batch.name, batch.total, batch.skipped) == (
        "skipping",
        2,
        [[2, "context", "missing variables: topic"]],
    )
    assert at.expander[-1].label == "1 bad row skipped"
    assert [r["row"] for r in _table(at, "message")] == [2]


def test_the_bad_rows_listed_are_the_first_20(app_as, pool, analyst):
    numbers = b"n\n" + b"".join(b"%d\n" % n for n in range(400))
    at = _upload(app_as(analyst, BATCHES), "numbers.csv", numbers, "Say {{ b }}")
    at.button(key="batch_submit").click().run()
    assert not at.exception
    assert "400 bad rows: nothing was queued." in _texts(at.error)
    assert [r["row"] for r in _table(at, "message")] == list(range(1, 21))
    assert "and 380 more rows" in _texts(at.caption)
    assert batches.list_batches(pool, analyst) == [] and _jobs(pool) == {}


def test_a_csv_naming_a_column_twice_says_which(app_as, pool, analyst):
    at = app_as(analyst, BATCHES)
    _uploader(at).set_value(("rows.csv", b"a,a\n1,2\n", "x")).run()
    assert not at.exception
    assert "column 'a' more than once" in _texts(at.error)
    assert not [b for b in at.button if b.key == "batch_submit"]


def test_an_unreadable_file_says_why(app_as, pool, analyst):
    at = app_as(analyst, BATCHES)
    _uploader(at).set_value(("rows.jsonl", b'{"a": 1}\nnope\n', "x")).run()
    assert not at.exception
    assert "1 line of rows.jsonl cannot be read." in _texts(at.error)
    [row] = _table(at, "message")
    assert row["row"] == 2 and "line 2 is not JSON" in row["message"]
    assert not [b for b in at.button if b.key == "batch_submit"]


def _three_rows(pool, user, **first_row_state):
    """A batch of three rows, the first of them put in the given state."""
    batch = batches.submit_batch(
        pool,
        user=user,
        template="Hi {{ n }}",
        model="offline/echo",
        rows=[{"n": "1"}, {"n": "2"}, {"n": "3"}],
        name="three",
    )
    first = min(o.id for o in jobs.list_outputs(pool, user))
    with pool.connection() as conn:
        outputs_db.set_output_state(conn, first, **first_row_state)
    return batch


def test_cancel_and_retry_failed_buttons(app_as, pool, analyst):
    batch = _three_rows(pool, analyst, status="completed", raw_response="done")
    at = app_as(analyst, BATCHES)
    assert _progress(at) == ["1 completed · 0 failed · 2 pending of 3"]
    assert at.button(key=f"batch_retry_{batch.id}").disabled
    at.button(key=f"batch_cancel_{batch.id}").click().run()
    assert not at.exception
    # a question first: nothing is cancelled yet
    assert "Cancel the 2 unfinished rows of this batch?" in _texts(at.warning)
    assert batches.get_batch(pool, batch.id, analyst).unfinished == 2
    at.button(key=f"batch_cancel_no_{batch.id}").click().run()
    assert not at.warning and batches.get_batch(pool, batch.id, analyst).unfinished == 2
    at.button(key=f"batch_cancel_{batch.id}").click().run()
    at.button(key=f"batch_cancel_yes_{batch.id}").click().run()
    assert not at.exception
    assert f"Batch #{batch.id}: 2 waiting jobs cancelled." in _texts(at.toast)
    state = batches.get_batch(pool, batch.id, analyst)
    assert (state.completed, state.failed, state.cancelled, state.unfinished) == (1, 0, 2, 0)
    assert state.cancelled_at is not None
    cancelled = jobs.list_outputs(pool, analyst, status="failed")
    assert {o.error_message for o in cancelled} == {"cancelled by ana"}
    cancelled_jobs = {o.job_id for o in cancelled}
    # the card shows the cancel at once: cancelled apart from failed, nothing left to cancel
    assert _progress(at) == ["1 completed · 0 failed · 2 cancelled · 0 pending of 3"]
    assert at.button(key=f"batch_cancel_{batch.id}").disabled
    assert not at.warning
    assert at.button(key=f"batch_retry_{batch.id}").label == "Retry cancelled"

    at.button(key=f"batch_retry_{batch.id}").click().run()
    assert not at.exception
    assert f"Batch #{batch.id}: 2 cancelled rows queued again." in _texts(at.toast)
    state = batches.get_batch(pool, batch.id, analyst)
    assert (state.failed, state.unfinished, state.cancelled_at) == (0, 2, None)
    requeued = jobs.list_outputs(pool, analyst, status="pending")
    assert len(requeued) == 2 and not {o.job_id for o in requeued} & cancelled_jobs
    assert _jobs(pool)["todo"] == 2  # a new job each
    assert _progress(at) == ["1 completed · 0 failed · 2 pending of 3"]


def test_another_users_batches_are_not_listed(app_as, pool, analyst, other_analyst, admin):
    theirs = batches.submit_batch(
        pool, user=other_analyst, template="Hi {{ n }}", model="offline/echo", rows=[{"n": 1}]
    )
    at = app_as(analyst, BATCHES)
    assert not at.exception
    assert "No batches yet." in _texts(at.info)
    assert not _progress(at) and f"batch_csv_{theirs.id}" not in {
        b.key for b in at.get("download_button")
    }
    at = app_as(admin, BATCHES)
    assert "Everyone's batches" in _texts(at.subheader)
    assert "by otto" in _texts(at.caption)
    assert _progress(at) == ["0 completed · 0 failed · 1 pending of 1"]


def test_outputs_exports_follow_the_filters(app_as, pool, analyst, other_analyst, downloads):
    up = create_test_llm_output(pool, analyst, feedback="thumbs_up", raw_response="good")
    down = create_test_llm_output(pool, analyst, feedback="thumbs_down", raw_response="bad")
    plain = create_test_llm_output(pool, analyst, raw_response="meh")
    other_model = create_test_llm_output(pool, analyst, model="m-2", feedback="thumbs_up")
    create_test_llm_output(pool, analyst, status="failed")
    create_test_llm_output(pool, other_analyst, feedback="thumbs_up")

    def ids(kind: str) -> list[int]:
        lines = downloads(at, f"outputs_export_{kind}").splitlines()
        return [json.loads(line)["id"] for line in lines]

    at = app_as(analyst, OUTPUTS)
    assert not at.exception
    assert ids("all") == [up.id, down.id, plain.id, other_model.id]
    assert ids("golden") == [up.id, other_model.id]
    assert ids("eval") == [down.id]
    at.selectbox(key="outputs_model").set_value("offline/echo").run()
    assert ids("golden") == [up.id]
    record = json.loads(downloads(at, "outputs_export_golden"))
    assert record["messages"][-1] == {"role": "assistant", "content": "good"}


def test_submit_use_cache_is_stored(app_as, pool, analyst, settings_env):
    at = app_as(analyst)
    assert at.checkbox(key="submit_cache").value is False  # LLMJOBS_CACHE is off
    at.text_area(key="submit_var_concept").input("tides")
    at.checkbox(key="submit_cache").check()
    at.button(key="submit_button").click().run()
    assert not at.exception
    [output] = jobs.list_outputs(pool, analyst)
    assert output.use_cache is True

    settings_env(CACHE="1")
    assert app_as(analyst).checkbox(key="submit_cache").value is True


@pytest.fixture
async def cache_hits(pool, analyst, other_analyst, run_worker) -> dict[str, int]:
    """ana: first (asked the cache, answered by the model), hit (answered from first's), other
    (another question); plain asked without the cache. otto: theirs, the same question, answered
    by the model (the cache never crosses users)."""

    def ask(user, question: str, cache: bool) -> int:
        made = jobs.submit(pool, user=user, template=question, model="offline/echo", cache=cache)
        return made.output_id

    made = {"first": ask(analyst, "What is 2 + 2?", True)}
    await run_worker()
    made |= {
        "hit": ask(analyst, "What is 2 + 2?", True),
        "other": ask(analyst, "What is 3 + 3?", True),
        "theirs": ask(other_analyst, "What is 2 + 2?", True),
    }
    await run_worker()
    made["plain"] = ask(analyst, "What is 2 + 2?", False)  # after the others: never their source
    await run_worker()
    return made


def test_output_detail_says_the_answer_came_from_the_cache(
    app_as, pool, analyst, other_analyst, cache_hits
):
    first, hit = cache_hits["first"], cache_hits["hit"]
    assert jobs.get_output(pool, hit, analyst).cache_hit_of == first
    at = app_as(analyst, DETAIL, id=str(hit))
    assert not at.exception
    assert f"Answer reused from the cache (output {first})." in _texts(at.info)
    [link] = [p for p in at.main.get("page_link") if p.proto.label == f"Open output #{first}"]
    assert link.proto.query_string == f"id={first}"

    at = app_as(analyst, DETAIL, id=str(first))
    assert "cache" not in _texts(at.info)

    theirs = cache_hits["theirs"]
    assert jobs.get_output(pool, theirs, other_analyst).cache_hit_of is None
    at = app_as(other_analyst, DETAIL, id=str(theirs))
    assert "cache" not in _texts(at.info)


def test_analytics_cache_hit_rate(app_as, pool, analyst, admin, cache_hits):
    # ana: first, hit and other asked for the cache, hit was answered from it: 1 of 3.
    at = app_as(analyst, ANALYTICS)
    assert not at.exception
    [metric] = [m for m in at.metric if m.label == "Cache hit rate"]
    assert metric.value == "33.3 %"
    assert metric.proto.help.startswith("1 of the 3 completed outputs")
    # everyone: otto asked for the cache too but has no earlier answer of his own: 1 of 4.
    at = app_as(admin, ANALYTICS)
    assert {m.label: m.value for m in at.metric}["Cache hit rate"] == "25 %"


def test_cache_hit_rate_is_scoped_to_the_viewer(pool, analyst, admin, cache_hits):
    everything = analytics.output_filter()
    mine = analytics.cache_hit_rate(pool, analyst, everything)
    assert (mine.eligible, mine.hits, mine.rate) == (3, 1, pytest.approx(1 / 3))
    asked_for_everyone = analytics.output_filter(user_id=admin.id)  # an analyst cannot widen it
    assert analytics.cache_hit_rate(pool, analyst, asked_for_everyone) == mine
    everyone = analytics.cache_hit_rate(pool, admin, everything)
    assert (everyone.eligible, everyone.hits) == (4, 1)
    last_year = datetime.now(UTC).date() - timedelta(days=365)
    before = analytics.output_filter(start=last_year, end=last_year)
    empty = analytics.cache_hit_rate(pool, admin, before)
    assert (empty.eligible, empty.hits, empty.rate) == (0, 0, None)


@pytest.mark.slow
def test_upload_in_a_browser(chromium, services, pool, tmp_path):  # noqa: F811 - fixtures
    """The real uploader: a CSV set on the file input, the batch submitted, followed until
    done, and its results downloaded."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)
        try:
            page.goto(f"{services}/batches")
            page.locator("input[type=file]").set_input_files(
                files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": CSV}]
            )
            expect(page.get_by_text("2 rows · columns: name, topic")).to_be_visible()
            template = page.get_by_role("textbox", name="Template")
            template.fill("Teach {{ name }} {{ topic }}")
            template.press("Control+Enter")
            expect(page.get_by_text("Every variable is a column: name, topic.")).to_be_visible()
            page.get_by_role("button", name="Submit batch").click()
            # the list refreshes itself until the worker (slow to start) has done both rows
            done = page.get_by_text("2 completed · 0 failed · 0 pending of 2")
            expect(done).to_be_visible(timeout=90_000)
            # then the page is drawn again, the finished batch's buttons with it
            cancel = page.get_by_role("button", name="Cancel waiting jobs")
            expect(cancel).to_be_disabled()
            page.screenshot(path=str(tmp_path / "batches.png"), full_page=True)  # for a failure
            with page.expect_download() as downloading:
                page.get_by_role("button", name="Results (CSV)").click()
            saved = tmp_path / downloading.value.suggested_filename
            downloading.value.save_as(saved)
        finally:
            browser.close()
    [batch] = batches.list_batches(pool, local_user(pool))
    assert saved.name == f"batch-{batch.id}-results.csv"
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert [r["output"] for r in rows] == ["Echo: Teach Ada loops", "Echo: Teach Bob sets"]


def test_cache_hit_rate_follows_the_model_filter(pool, analyst, cache_hits):
    everything = analytics.output_filter()
    assert analytics.cache_hit_rate(pool, analyst, everything).eligible == 3
    other_model = analytics.output_filter(model="openai/none")
    assert analytics.cache_hit_rate(pool, analyst, other_model).eligible == 0
    one_question = analytics.output_filter(template="What is 3 + 3?")
    found = analytics.cache_hit_rate(pool, analyst, one_question)
    assert (found.eligible, found.hits) == (1, 0)


def test_retry_says_failed_and_cancelled_rows_apart(app_as, pool, analyst):
    batch = _three_rows(pool, analyst, status="failed", error_message="model error")
    batches.cancel_batch(pool, batch.id, analyst)
    state = batches.get_batch(pool, batch.id, analyst)
    assert (state.failed, state.cancelled, state.unfinished) == (1, 2, 0)
    at = app_as(analyst, BATCHES)
    assert _progress(at) == ["0 completed · 1 failed · 2 cancelled · 0 pending of 3"]
    retry = at.button(key=f"batch_retry_{batch.id}")
    assert retry.label == "Retry failed and cancelled"
    retry.click().run()
    assert f"Batch #{batch.id}: 1 failed row and 2 cancelled rows queued again." in _texts(at.toast)
    assert _progress(at) == ["0 completed · 0 failed · 3 pending of 3"]


def test_a_batch_links_to_its_outputs(app_as, pool, analyst):
    batch = batches.submit_batch(
        pool, user=analyst, template="Hi {{ n }}", model="offline/echo", rows=[{"n": "1"}]
    )
    alone = create_test_llm_output(pool, analyst)
    at = app_as(analyst, BATCHES)
    [link] = [p for p in at.get("page_link") if p.proto.label == "Its outputs"]
    assert link.proto.page.endswith("outputs") and link.proto.query_string == f"batch={batch.id}"
    at = app_as(analyst, OUTPUTS, batch=str(batch.id))
    assert not at.exception
    assert f"The outputs of batch #{batch.id}." in _texts(at.caption)
    [table] = [d.value for d in at.dataframe if "id" in d.value.columns]
    assert alone.id not in set(table["id"]) and len(table) == 1
