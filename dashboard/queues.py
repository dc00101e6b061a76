"""Queues (admins only): jobs per queue and status, pausing and resuming a queue, the provider
limits' use per model, throughput, running, waiting and failed jobs (retry, cancel), workers and
stalled jobs, the maintenance jobs apart, and bulk retry or cancel by filter with a count before
acting. With Live on, the figures and the lists refresh together, from one snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg
import streamlit as st

from dashboard import auth, charts, deps, empty, joblines, svgchart, ui
from tasks import admin, limits
from tasks.config import MAINTENANCE_QUEUE, QUEUES
from tasks.errors import Conflict, InvalidInput, LLMJobsError, NotFound

PAGE_SIZE = admin.LIST_LIMIT
JOB_STATUSES = {
    "todo": "Waiting",
    "doing": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "aborted": "Aborted",
}
WINDOWS = {1: "1 h", 6: "6 h", 24: "24 h", 72: "72 h"}
LIVE_EVERY = 5
THROUGHPUT_LINES = {
    "queued": "#1e88e5",
    "succeeded": "#43a047",
    "failed": "#e53935",
    "retried": "#fb8c00",
}
BULK = {"retry": "Retry failed jobs", "cancel": "Cancel waiting jobs"}

user = auth.require_user()
pool = deps.pool()

st.title(":material/stacks: Queues", anchor=False)
if not user.is_admin:
    st.error(
        "Admins only: the queues show and change everyone's jobs. Your own jobs are on the "
        "Outputs page.",
        icon=":material/lock:",
    )
    st.stop()


def _say(kind: str, text: str) -> None:
    st.session_state["queues_message"] = (kind, text)


def act(action: str, job_id: int) -> None:
    """Retry or cancel one job, then say what happened (a job that changed meanwhile is told
    in a sentence)."""
    try:
        if action == "retry":
            changed = admin.retry_failed_job(pool, job_id, user)
            done = f"Job {job_id} queued again"
        else:
            changed = admin.cancel_waiting_job(pool, job_id, user)
            done = f"Job {job_id} cancelled"
    except (Conflict, NotFound) as exc:
        _say("info", str(exc))
    except LLMJobsError as exc:
        _say("error", str(exc))
    except psycopg.Error as exc:
        _say("error", ui.database_message(exc))
    else:
        outputs = ", ".join(f"#{i}" for i in changed)
        _say("success", done + (f" (output {outputs})" if outputs else "") + ".")
    deps.forget_queues()


def pause(queue: str, paused: bool) -> None:
    try:
        if paused:
            admin.resume_queue(pool, queue, user)
            _say("success", f"Queue {queue} resumed: workers take its waiting jobs again.")
        else:
            admin.pause_queue(pool, queue, user)
            _say(
                "success",
                f"Queue {queue} paused: workers take none of its waiting jobs until it is "
                "resumed; running jobs finish.",
            )
    except LLMJobsError as exc:
        _say("error", str(exc))
    except psycopg.Error as exc:
        _say("error", ui.database_message(exc))
    deps.forget_queues()


def show_message() -> None:
    message = st.session_state.pop("queues_message", None)
    if message:
        kind, text = message
        icon = {"success": ":material/check:", "info": ":material/info:"}.get(
            kind, ":material/error:"
        )
        getattr(st, kind)(text, icon=icon)


controls = st.columns([3, 2, 3])
hours = (
    controls[0].segmented_control(
        "Throughput over",
        list(WINDOWS),
        default=24,
        format_func=WINDOWS.get,
        key="queues_hours",
        required=True,
        help="Per minute over the last hour, per hour over longer windows.",
    )
    or 24
)
live = controls[1].toggle(f"Live (every {LIVE_EVERY} s)", key="queues_live")


def used(value: int, cap: int | None) -> str:
    """A use against its cap: "12 / 500", or "12" without one."""
    return f"{value:,}" if cap is None else f"{value:,} / {cap:,}"


def paused(until: datetime | None, now: datetime) -> str:
    """The end of a 429's pause: "14:32:05 UTC (40 s left)", or "–"."""
    if until is None:
        return "–"
    return f"{until:%H:%M:%S} UTC ({joblines.ago(now, until)} left)"  # ago: from now to then


def provider_limits(now: datetime) -> None:
    """Each limited model's use now: the figures the workers' fetch goes by."""
    st.subheader(":material/traffic: Provider limits", anchor=False)
    rows = deps.limit_use(pool, user)
    if not rows:
        empty.no_limits()
        return
    table = pd.DataFrame(
        {
            "Model": [r.model or "no model yet" for r in rows],
            "Limit": [r.pattern or "none (a 429 only)" for r in rows],
            "Requests, last minute": [used(r.requests_last_minute, r.rpm) for r in rows],
            "Tokens, last minute": [used(r.tokens_last_minute, r.tpm) for r in rows],
            "In flight": [used(r.in_flight, r.max_concurrent) for r in rows],
            "Waiting jobs": [r.waiting for r in rows],
            "429s, last hour": [r.rate_limited_last_hour for r in rows],
            "Paused until": [paused(r.paused_until, now) for r in rows],
            "Waiting for": [limits.REASONS.get(r.blocked or "", "nothing") for r in rows],
        }
    )
    st.table(table.set_index("Model"))
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption(
            "Jobs over their model's limit wait, spending no attempt, until it has room; a "
            "provider's 429 pauses the model for every worker. Tokens count the prompt and "
            "the answer (estimated until it comes)."
        )
        st.page_link(ui.LIMITS_PAGE, label="Limits", icon=":material/traffic:")


@st.fragment(run_every=LIVE_EVERY if live else None)
@ui.guarded
def board() -> None:
    """The figures and the lists, from one snapshot: a Live refresh updates them together."""
    show_message()
    cursors: list[int | None] = st.session_state.setdefault("queues_failed_cursors", [None])
    data = deps.queue_overview(pool, user, hours, cursors[-1])
    now = datetime.now(UTC)
    job_rows = [c for c in data.counts if c.queue_name != MAINTENANCE_QUEUE]
    counts = charts.job_counts(job_rows)
    totals = counts.sum()
    figures = st.columns(len(JOB_STATUSES))
    for column, (status, label) in zip(figures, JOB_STATUSES.items(), strict=True):
        column.metric(label, f"{int(totals.get(status, 0)):,}")
    st.caption(
        f"As of {now:%H:%M:%S} UTC"
        + (f", refreshed every {LIVE_EVERY} s" if live else "")
        + ". Maintenance jobs are counted apart, at the bottom."
    )

    st.subheader(":material/table_chart: Jobs per queue", anchor=False)
    paused = {p.queue_name: p for p in data.paused}
    table = counts.reindex(list(dict.fromkeys([*QUEUES, *counts.index])), fill_value=0).rename(
        columns=JOB_STATUSES
    )
    table.insert(
        0,
        "State",
        [
            f"paused by {paused[q].paused_by}, {ui.when(paused[q].paused_at)}"
            if q in paused
            else "running"
            for q in table.index
        ],
    )
    st.table(table.rename_axis(index="Queue"))
    buttons = st.columns(len(QUEUES) + 1)
    for column, queue in zip(buttons, QUEUES, strict=False):
        is_paused = queue in paused
        column.button(
            f"{'Resume' if is_paused else 'Pause'} {queue}",
            icon=":material/play_arrow:" if is_paused else ":material/pause:",
            key=f"queues_pause_{queue}",
            on_click=pause,
            args=(queue, is_paused),
            help="Paused: workers take none of its waiting jobs; running jobs finish.",
        )
    if not job_rows:
        empty.next_step(pool, user, "No jobs yet.", key="queues", icon=":material/stacks:")

    provider_limits(now)

    st.subheader(
        f":material/speed: Throughput per {data.throughput_unit}, last {WINDOWS[hours]}",
        anchor=False,
    )
    if data.throughput:
        points = [(p.at, p.event, p.jobs) for p in data.throughput]
        chart = svgchart.lines(
            points,
            THROUGHPUT_LINES,
            unit=data.throughput_unit,
            span=(now - timedelta(hours=hours), now),
        )
        st.image(chart, width="stretch")
    else:
        st.caption("No job queued or finished in this window.")

    running = int(totals.get("doing", 0))
    st.subheader(f":material/directions_run: Running jobs ({running:,})", anchor=False)
    if not data.busy_jobs:
        st.caption("No job is running.")
    for job in data.busy_jobs:
        st.markdown(joblines.running(job, now))
    if running > len(data.busy_jobs):
        st.caption(f"The {len(data.busy_jobs)} running longest are shown.")

    waiting = int(totals.get("todo", 0))
    st.subheader(f":material/schedule: Waiting jobs ({waiting:,})", anchor=False)
    if not data.waiting_jobs:
        st.caption("Nothing is waiting.")
    for job in data.waiting_jobs:
        about, action = st.columns([8, 1], vertical_alignment="center")
        about.markdown(joblines.waiting(job, job.queue_name in paused))
        action.button(
            "Cancel",
            icon=":material/cancel:",
            key=f"cancel_{job.job_id}",
            on_click=act,
            args=("cancel", job.job_id),
        )
    if waiting > len(data.waiting_jobs):
        st.caption(f"The next {len(data.waiting_jobs)} to run are shown.")

    failed = int(totals.get("failed", 0))
    st.subheader(f":material/error: Failed jobs ({failed:,})", anchor=False)
    if not data.failed_jobs:
        st.caption("No failed jobs.")
    for job in data.failed_jobs:
        about, action = st.columns([8, 1], vertical_alignment="center")
        about.markdown(joblines.failed(job))
        action.button(
            "Retry",
            icon=":material/replay:",
            key=f"retry_{job.job_id}",
            on_click=act,
            args=("retry", job.job_id),
        )
    pager = st.columns([1, 1, 4])
    if pager[0].button(
        "Newer", icon=":material/chevron_left:", disabled=len(cursors) == 1, key="failed_newer"
    ):
        cursors.pop()
        st.rerun(scope="fragment")
    if pager[1].button(
        "Older",
        icon=":material/chevron_right:",
        disabled=not data.more_failed,
        key="failed_older",
    ):
        cursors.append(data.failed_jobs[-1].job_id)
        st.rerun(scope="fragment")

    left, right = st.columns(2, gap="large")
    with left:
        st.subheader(":material/engineering: Workers", anchor=False)
        stalled = [w for w in data.workers if w.stalled]
        if stalled:
            st.warning(
                f"{len(stalled)} worker(s) silent for more than {data.stalled_after:.0f} s: "
                + ", ".join(str(w.worker_id) for w in stalled),
                icon=":material/heart_broken:",
            )
        if data.workers:
            workers = pd.DataFrame(
                {
                    "Worker": [w.worker_id for w in data.workers],
                    "Running jobs": [w.running_jobs for w in data.workers],
                    "Last heartbeat": [
                        joblines.ago(w.last_heartbeat, now) + " ago" for w in data.workers
                    ],
                    "State": ["stalled" if w.stalled else "alive" for w in data.workers],
                }
            )
            st.table(workers.set_index("Worker"))
        else:
            st.caption(
                "No worker is running: start one with `procrastinate --app=tasks.app worker`."
            )
    with right:
        st.subheader(":material/hourglass_disabled: Stalled jobs", anchor=False)
        if data.stalled_jobs:
            stalled_jobs = pd.DataFrame(
                {
                    "Job": [j.job_id for j in data.stalled_jobs],
                    "Queue": [j.queue_name for j in data.stalled_jobs],
                    "Worker": [j.worker_id for j in data.stalled_jobs],
                    "Running for": [joblines.ago(j.started_at, now) for j in data.stalled_jobs],
                    "Output": [j.output_id for j in data.stalled_jobs],
                }
            )
            st.table(stalled_jobs.set_index("Job"))
            st.caption(
                "Workers send these back to the queue (or fail them when their retries "
                "are spent) by themselves."
            )
        else:
            st.caption("None.")

    st.subheader(":material/build: Maintenance jobs", anchor=False)
    is_paused = MAINTENANCE_QUEUE in paused
    if data.maintenance:
        maintenance = pd.DataFrame(
            {
                "Task": [m.task_name for m in data.maintenance],
                "Waiting": [m.waiting for m in data.maintenance],
                "Running": [m.running for m in data.maintenance],
                "Succeeded": [m.succeeded for m in data.maintenance],
                "Failed": [m.failed for m in data.maintenance],
                "Last run": [joblines.ago(m.last_run_at, now) + " ago" for m in data.maintenance],
            }
        )
        st.table(maintenance.set_index("Task"))
    st.caption(
        "Periodic clean-ups and recoveries on the maintenance queue"
        + (f", paused by {paused[MAINTENANCE_QUEUE].paused_by}." if is_paused else ".")
    )
    st.button(
        f"{'Resume' if is_paused else 'Pause'} maintenance",
        icon=":material/play_arrow:" if is_paused else ":material/pause:",
        key=f"queues_pause_{MAINTENANCE_QUEUE}",
        on_click=pause,
        args=(MAINTENANCE_QUEUE, is_paused),
    )


board()

st.subheader(":material/checklist: Bulk actions by filter", anchor=False)
with st.form("queues_bulk_form", border=True):
    action = st.radio("Action", list(BULK), format_func=BULK.get, key="queues_bulk_action")
    fields = st.columns(4)
    queue = fields[0].selectbox(
        "Queue", [None, *QUEUES], format_func=lambda q: q or "Every queue", key="queues_bulk_queue"
    )
    model = fields[1].text_input(
        "Model (exact)", max_chars=admin.MAX_FILTER_TEXT, key="queues_bulk_model"
    )
    error = fields[2].text_input(
        "Error contains", max_chars=admin.MAX_FILTER_TEXT, key="queues_bulk_error"
    )
    age = fields[3].number_input(
        "Older than (minutes)",
        min_value=0,
        max_value=admin.MAX_AGE_MINUTES,
        value=0,
        step=1,
        key="queues_bulk_age",
    )
    previewed = st.form_submit_button("Count the jobs", icon=":material/search:")

if previewed:
    try:
        flt = admin.bulk_filter(
            queue=queue, model=model, error=error, older_than_minutes=int(age or 0)
        )
        count = admin.bulk_preview(pool, user, action, flt)
    except InvalidInput as exc:
        ui.show_error(exc)
        st.session_state.pop("queues_bulk", None)
    else:
        st.session_state["queues_bulk"] = {
            "action": action,
            "filter": flt.model_dump(),
            "count": count,
        }

pending = st.session_state.get("queues_bulk")
if pending:
    count, kind = pending["count"], pending["action"]
    jobs_word = "failed" if kind == "retry" else "waiting"
    if count == 0:
        st.info(f"No {jobs_word} job matches this filter: nothing to do.", icon=":material/info:")
    else:
        many = count >= admin.BULK_LIMIT
        st.warning(
            f"{admin.BULK_LIMIT:,} or more {jobs_word} jobs match: the oldest {admin.BULK_LIMIT:,} "
            "are changed; count again for the rest."
            if many
            else f"{count:,} {jobs_word} job{'s match' if count != 1 else ' matches'}.",
            icon=":material/warning:",
        )
        confirm, discard, _ = st.columns([2, 1, 3])
        verb = "Retry" if kind == "retry" else "Cancel"
        if confirm.button(f"{verb} these {count:,} jobs", type="primary", key="queues_bulk_go"):
            with ui.database_guard():
                outcome = admin.bulk_act(
                    pool,
                    user,
                    kind,
                    admin.BulkFilter.model_validate(pending["filter"]),
                    previewed=count,
                )
            st.session_state.pop("queues_bulk", None)
            _say("success" if outcome.changed == count else "info", outcome.message)
            deps.forget_queues()
            st.rerun()
        if discard.button("Discard", key="queues_bulk_discard"):
            st.session_state.pop("queues_bulk", None)
            st.rerun()
