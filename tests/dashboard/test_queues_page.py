"""The Queues page (AppTest) over real procrastinate jobs: figures and lists that agree at every
refresh, running jobs, maintenance jobs apart, throughput per minute or per hour as the window
chosen, bulk retry and cancel by filter (queue, model, error text, age) whose count before acting
is what changes, pause and resume, readable columns, hostile filters."""

from __future__ import annotations

import asyncio
import base64
import re
from collections import Counter
from datetime import timedelta

import pytest
import streamlit as st
from procrastinate import SyncPsycopgConnector
from procrastinate.jobs import Status
from procrastinate.manager import JobManager

from db import outputs as outputs_db
from tasks import admin as queue_admin
from tasks import outputs as jobs
from tasks.errors import InvalidInput
from tests.support.events import db_time, replace_events

QUEUES = "dashboard/queues.py"
_manager = JobManager(SyncPsycopgConnector())


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _submit(pool, user, queue="default", n=0, model="offline/echo"):
    return jobs.submit(
        pool, user=user, template="Hi {{n}}", context={"n": n}, model=model, queue=queue
    )


def _submitted_hours_ago(pool, subs, hours: int) -> None:
    """Date these outputs back, on the database clock (the age filter counts from there)."""
    with pool.connection() as conn:
        conn.execute(
            "UPDATE llm_outputs SET created_at = now() - make_interval(hours => %s) "
            "WHERE id = ANY(%s)",
            [hours, [s.output_id for s in subs]],
        )


def _count(at, action: str, *, model: str = "", age: int = 0) -> None:
    """Fill the bulk form and press "Count the jobs"."""
    at.radio(key="queues_bulk_action").set_value(action)
    at.text_input(key="queues_bulk_model").input(model)
    at.number_input(key="queues_bulk_age").set_value(age)
    at.button(key="FormSubmitter:queues_bulk_form-Count the jobs").click().run()
    assert not at.exception


def _counts_read(at, action: str, cases: list[tuple[dict, str]]) -> None:
    """For each (filter, sentence): count with that filter, and the page says the sentence."""
    for filters, sentence in cases:
        _count(at, action, **filters)
        assert sentence in _texts(at.warning) + " " + _texts(at.info), filters


def _job_status(pool, job_id: int) -> str:
    with pool.connection() as conn:
        return _manager.get_job_status(job_id, connection=conn).value


async def _fail(opened_app, pool, sub, error: str) -> None:
    """Take the job as a worker would and fail it, its output with error."""
    manager = opened_app.job_manager
    job = await manager.fetch_job(queues=None, worker_id=None)
    assert job is not None and job.id == sub.job_id
    await manager.finish_job(job, status=Status.FAILED, delete_job=False)
    with pool.connection() as conn:
        outputs_db.set_output_state(conn, sub.output_id, status="failed", error_message=error)


def _rerun(at):
    st.cache_data.clear()  # as the snapshot's 2 s cache expires between two Live refreshes
    return at.run()


async def test_live_refresh_updates_figures_and_lists_together(
    app_as, pool, analyst, admin, opened_app
):
    subs = [_submit(pool, analyst, n=i) for i in range(3)]
    at = app_as(admin, QUEUES)
    at.toggle(key="queues_live").set_value(True).run()
    assert not at.exception
    assert (_metrics(at)["Waiting"], _metrics(at)["Running"]) == ("3", "0")
    assert "Waiting jobs (3)" in _texts(at.subheader)
    assert len([b for b in at.button if b.key.startswith("cancel_")]) == 3
    assert "No job is running." in _texts(at.caption)

    # a worker takes the first job: the next refresh shows it running, in the figures and lists
    worker_id = await opened_app.job_manager.register_worker()
    taken = await opened_app.job_manager.fetch_job(queues=None, worker_id=worker_id)
    assert taken.id == subs[0].job_id
    await asyncio.to_thread(_rerun, at)
    assert not at.exception
    assert (_metrics(at)["Waiting"], _metrics(at)["Running"]) == ("2", "1")
    assert "Running jobs (1)" in _texts(at.subheader)
    assert "Waiting jobs (2)" in _texts(at.subheader)
    shown = _texts(at.markdown)
    assert f"**Job {subs[0].job_id}** · default · worker {worker_id} · running for" in shown
    assert f"[Output #{subs[0].output_id}](output?id={subs[0].output_id})" in shown
    assert len([b for b in at.button if b.key.startswith("cancel_")]) == 2
    # every table speaks in words, never in column names
    assert not at.dataframe
    for table in at.table:
        names = [table.value.index.name, *table.value.columns]
        assert not [c for c in names if "_" in str(c)], names
    workers = next(t.value for t in at.table if "Last heartbeat" in t.value.columns)
    assert [workers.index.name, *workers.columns] == [
        "Worker",
        "Running jobs",
        "Last heartbeat",
        "State",
    ]


def _chart(at) -> tuple[str, int, dict[tuple[str, str], int]]:
    """The throughput chart: what it plots per (its aria label), how many buckets it draws, and
    its points that are not 0, (line, time as labelled) -> jobs."""
    [image] = at.image
    svg = base64.b64decode(image.value[0].split(",", 1)[1]).decode()
    label = re.search(r'aria-label="([^"]+)"', svg).group(1)
    points = re.findall(r"<title>(\w+) (.+?): ([\d,]+)</title>", svg)
    buckets = len([1 for line, _, _ in points if line == "queued"])
    return label, buckets, {(line, at_): int(n) for line, at_, n in points if n != "0"}


def test_the_window_chooses_minutes_or_hours(app_as, pool, analyst, admin):
    first, second = (_submit(pool, analyst, n=i).job_id for i in range(2))
    start = db_time(pool, "date_trunc('minute', now()) - interval '10 minutes'")
    minute = timedelta(minutes=1)
    replace_events(
        pool,
        [
            (first, "deferred", start - timedelta(hours=3)),  # outside the last hour
            (second, "deferred", start + timedelta(seconds=5)),
            (first, "succeeded", start + timedelta(seconds=30)),
            (second, "failed", start + minute + timedelta(seconds=5)),
            (second, "retried", start + 2 * minute + timedelta(seconds=5)),
        ],
    )
    at = app_as(admin, QUEUES)
    assert not at.exception
    assert "Throughput per hour, last 24 h" in _texts(at.subheader)
    label, buckets, points = _chart(at)
    assert (label, buckets) == ("jobs per hour", 25)  # every hour the last 24 h overlap
    assert all(when.endswith(":00") for _, when in points)
    by_line = Counter()
    for (line, _), jobs_ in points.items():
        by_line[line] += jobs_
    assert by_line == {"queued": 2, "succeeded": 1, "failed": 1, "retried": 1}

    at.segmented_control(key="queues_hours").set_value(1).run()
    assert not at.exception
    assert "Throughput per minute, last 1 h" in _texts(at.subheader)
    label, buckets, points = _chart(at)
    assert (label, buckets) == ("jobs per minute", 61)  # every minute the last hour overlaps
    assert points == {
        ("queued", f"{start:%H:%M}"): 1,
        ("succeeded", f"{start:%H:%M}"): 1,
        ("failed", f"{start + minute:%H:%M}"): 1,
        ("retried", f"{start + 2 * minute:%H:%M}"): 1,
    }

    at.segmented_control(key="queues_hours").set_value(6).run()
    assert "Throughput per hour, last 6 h" in _texts(at.subheader)
    assert _chart(at)[:2] == ("jobs per hour", 7)


async def test_maintenance_jobs_are_shown_apart(app_as, pool, analyst, admin, opened_app):
    _submit(pool, analyst)
    opened_app.perform_import_paths()
    await opened_app.tasks["llmjobs.prune_catalog"].defer_async(timestamp=0)
    at = app_as(admin, QUEUES)
    assert not at.exception
    assert _metrics(at)["Waiting"] == "1"  # the LLM job, not the maintenance one
    maintenance = next(t.value for t in at.table if t.value.index.name == "Task")
    assert list(maintenance.index) == ["llmjobs.prune_catalog"]
    assert maintenance.loc["llmjobs.prune_catalog", "Waiting"] == 1
    counts = next(t.value for t in at.table if t.value.index.name == "Queue")
    assert "maintenance" not in counts.index


async def test_bulk_retry_by_filter_changes_what_it_counted(
    app_as, pool, analyst, admin, opened_app
):
    rate_limited = [_submit(pool, analyst, n=i) for i in range(3)]
    other = _submit(pool, analyst, n=9)
    for sub in rate_limited:
        await _fail(opened_app, pool, sub, "RateLimitError: slow down")
    await _fail(opened_app, pool, other, "BadRequestError: no")

    at = app_as(admin, QUEUES)
    at.radio(key="queues_bulk_action").set_value("retry")
    at.text_input(key="queues_bulk_error").input("timeout")
    at.button(key="FormSubmitter:queues_bulk_form-Count the jobs").click().run()
    assert "No failed job matches this filter" in _texts(at.info)

    at.text_input(key="queues_bulk_error").input("RATELIMITERROR")
    at.button(key="FormSubmitter:queues_bulk_form-Count the jobs").click().run()
    assert not at.exception
    assert "3 failed jobs match." in _texts(at.warning)
    at.button(key="queues_bulk_go").click().run()
    assert not at.exception
    assert "Queued again 3 jobs (3 outputs back to pending)." in _texts(at.success)
    assert [_job_status(pool, s.job_id) for s in rate_limited] == ["todo"] * 3
    assert _job_status(pool, other.job_id) == "failed"
    assert {jobs.get_output(pool, s.output_id, analyst).status for s in rate_limited} == {"pending"}
    assert _metrics(at)["Failed"] == "1" and _metrics(at)["Waiting"] == "3"


async def test_bulk_retry_by_model_and_age_changes_what_it_counted(
    app_as, pool, analyst, admin, opened_app
):
    # failed: two old brief ones (the match), a new brief one, an old echo one
    old_brief = [_submit(pool, analyst, n=i, model="offline/brief") for i in range(2)]
    new_brief = _submit(pool, analyst, n=2, model="offline/brief")
    old_echo = _submit(pool, analyst, n=3, model="offline/echo")
    for sub in [*old_brief, new_brief, old_echo]:
        await _fail(opened_app, pool, sub, "RateLimitError: slow down")
    _submitted_hours_ago(pool, [*old_brief, old_echo], 2)

    at = app_as(admin, QUEUES)
    _counts_read(
        at,
        "retry",
        [
            ({"model": "offline/brief"}, "3 failed jobs match."),
            ({"age": 60}, "3 failed jobs match."),
            ({"model": "offline/verbose", "age": 60}, "No failed job matches this filter"),
            ({"model": "offline/brief", "age": 60}, "2 failed jobs match."),
        ],
    )
    flt = queue_admin.bulk_filter(model="offline/brief", older_than_minutes=60)
    assert queue_admin.bulk_preview(pool, admin, "retry", flt) == 2

    at.button(key="queues_bulk_go").click().run()
    assert not at.exception
    assert "Queued again 2 jobs (2 outputs back to pending)." in _texts(at.success)
    assert [_job_status(pool, s.job_id) for s in old_brief] == ["todo", "todo"]
    assert [_job_status(pool, s.job_id) for s in (new_brief, old_echo)] == ["failed", "failed"]
    assert {jobs.get_output(pool, s.output_id, analyst).status for s in old_brief} == {"pending"}
    assert _metrics(at)["Failed"] == "2" and _metrics(at)["Waiting"] == "2"


def test_bulk_cancel_by_model_and_age_cancels_what_it_counted(app_as, pool, analyst, admin):
    # waiting: three old verbose ones (the match), a new verbose one, an old echo one
    old_verbose = [_submit(pool, analyst, n=i, model="offline/verbose") for i in range(3)]
    new_verbose = _submit(pool, analyst, n=3, model="offline/verbose")
    old_echo = _submit(pool, analyst, n=4, model="offline/echo")
    _submitted_hours_ago(pool, [*old_verbose, old_echo], 3)

    at = app_as(admin, QUEUES)
    _counts_read(
        at,
        "cancel",
        [
            ({"model": "offline/verbose"}, "4 waiting jobs match."),
            ({"age": 120}, "4 waiting jobs match."),
            ({"model": "offline/verbose", "age": 240}, "No waiting job matches this filter"),
            ({"model": "offline/verbose", "age": 120}, "3 waiting jobs match."),
        ],
    )
    at.button(key="queues_bulk_go").click().run()
    assert not at.exception
    # nothing changed between the count and the confirmation: what was counted is cancelled
    assert "Cancelled 3 jobs (3 outputs failed)." in _texts(at.success)
    assert not at.info
    assert [_job_status(pool, s.job_id) for s in old_verbose] == ["cancelled"] * 3
    assert [_job_status(pool, s.job_id) for s in (new_verbose, old_echo)] == ["todo", "todo"]
    for sub in old_verbose:
        output = jobs.get_output(pool, sub.output_id, analyst)
        assert (output.status, output.error_message) == ("failed", "cancelled by root-admin")
    assert _metrics(at)["Waiting"] == "2" and _metrics(at)["Cancelled"] == "3"


def test_bulk_cancel_by_filter_says_when_fewer_changed(app_as, pool, analyst, admin):
    low = [_submit(pool, analyst, queue="low", n=i) for i in range(3)]
    kept = _submit(pool, analyst, queue="default")

    at = app_as(admin, QUEUES)
    at.radio(key="queues_bulk_action").set_value("cancel")
    at.selectbox(key="queues_bulk_queue").set_value("low")
    at.button(key="FormSubmitter:queues_bulk_form-Count the jobs").click().run()
    assert "3 waiting jobs match." in _texts(at.warning)
    assert (
        queue_admin.bulk_preview(pool, admin, "cancel", queue_admin.bulk_filter(queue="low")) == 3
    )
    # one of them is cancelled by someone else between the count and the confirmation
    queue_admin.cancel_waiting_job(pool, low[0].job_id, admin)
    at.button(key="queues_bulk_go").click().run()
    assert not at.exception
    said = _texts(at.info)
    assert "Cancelled 2 jobs (2 outputs failed)." in said
    assert "3 jobs were previewed: 1 was no longer waiting" in said
    assert [_job_status(pool, s.job_id) for s in low] == ["cancelled"] * 3
    assert _job_status(pool, kept.job_id) == "todo"
    output = jobs.get_output(pool, low[1].output_id, analyst)
    assert (output.status, output.error_message) == ("failed", "cancelled by root-admin")


async def test_cancel_of_a_job_that_finished_meanwhile_says_so(
    app_as, pool, analyst, admin, opened_app
):
    sub = _submit(pool, analyst)
    at = app_as(admin, QUEUES)
    job = await opened_app.job_manager.fetch_job(queues=None, worker_id=None)
    await opened_app.job_manager.finish_job(job, status=Status.SUCCEEDED, delete_job=False)
    await asyncio.to_thread(at.button(key=f"cancel_{sub.job_id}").click().run)
    assert not at.exception
    assert (
        f"Job {sub.job_id} already finished (it succeeded): only waiting jobs can be cancelled."
        in _texts(at.info)
    )


def test_pause_and_resume_from_the_page(app_as, pool, analyst, admin):
    _submit(pool, analyst)
    at = app_as(admin, QUEUES)
    at.button(key="queues_pause_default").click().run()
    assert not at.exception
    assert "Queue default paused" in _texts(at.success)
    counts = next(t.value for t in at.table if t.value.index.name == "Queue")
    assert counts.loc["default", "State"].startswith("paused by root-admin")
    assert "· default · priority 10 · paused" in _texts(at.markdown)
    [state] = [q for q in queue_admin.queue_states(pool, admin) if q.queue_name == "default"]
    assert (state.paused, state.paused_by, state.waiting) == (True, "root-admin", 1)
    assert at.button(key="queues_pause_default").label == "Resume default"
    at.button(key="queues_pause_default").click().run()
    assert "Queue default resumed" in _texts(at.success)
    assert not any(q.paused for q in queue_admin.queue_states(pool, admin))


def test_hostile_filters_and_queue_names(app_as, pool, analyst, admin):
    _submit(pool, analyst)
    at = app_as(admin, QUEUES)
    at.radio(key="queues_bulk_action").set_value("cancel")
    at.text_input(key="queues_bulk_model").input("x' OR 1=1; --")
    at.text_input(key="queues_bulk_error").input("%_\\")
    at.button(key="FormSubmitter:queues_bulk_form-Count the jobs").click().run()
    assert not at.exception
    assert "No waiting job matches this filter" in _texts(at.info)
    for bad in [
        {"queue": "nope"},
        {"queue": 3},
        {"model": "m" * 201},
        {"error": "a\x00b"},
        {"older_than_minutes": -1},
        {"older_than_minutes": True},
        {"older_than_minutes": 10**9},
    ]:
        with pytest.raises(InvalidInput) as refused:
            queue_admin.bulk_filter(**bad)
        assert refused.value.field == next(iter(bad))
    for bad_queue in ["nope", "", "default; DROP TABLE x", None, "x" * 500]:
        with pytest.raises(InvalidInput) as refused:
            queue_admin.pause_queue(pool, bad_queue, admin)
        assert refused.value.field == "queue"
    with pytest.raises(InvalidInput):
        queue_admin.bulk_preview(pool, admin, "delete", queue_admin.bulk_filter())
    with pytest.raises(InvalidInput):
        queue_admin.queue_overview(pool, admin, hours=0)
    assert _job_status(pool, 1) == "todo"


async def test_database_text_is_shown_as_typed(app_as, pool, analyst, admin, opened_app):
    sub = _submit(pool, analyst)
    await _fail(opened_app, pool, sub, "boom](http://evil.example) **loud**\n:blue[x]")
    at = app_as(admin, QUEUES)
    assert not at.exception
    shown = _texts(at.markdown)
    assert r":red[boom\]\(http\://evil\.example\) \*\*loud\*\* \:blue\[x\]]" in shown
    assert "](http://evil.example)" not in shown
