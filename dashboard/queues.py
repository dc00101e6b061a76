"""Queues (admins only): jobs per queue and status, throughput, workers and stalled jobs, failed
jobs with their error (retry) and waiting jobs (cancel)."""

from __future__ import annotations

import psycopg
import streamlit as st

from dashboard import auth, charts, deps, empty, ui
from tasks import admin
from tasks.errors import LLMJobsError

PAGE_SIZE = 20
JOB_STATUSES = {
    "todo": "Waiting",
    "doing": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "aborted": "Aborted",
}

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

flash = st.session_state.pop("queues_flash", None)
if flash:
    st.success(flash, icon=":material/check:")


def act(action: str, job_id: int) -> None:
    """Retry or cancel a job, then say what happened."""
    try:
        if action == "retry":
            changed = admin.retry_failed_job(pool, job_id, user)
            done = f"Job {job_id} queued again"
        else:
            changed = admin.cancel_waiting_job(pool, job_id, user)
            done = f"Job {job_id} cancelled"
    except LLMJobsError as exc:
        st.session_state["queues_problem"] = str(exc)
        return
    except psycopg.Error as exc:
        st.session_state["queues_problem"] = ui.database_message(exc)
        return
    outputs = ", ".join(f"#{i}" for i in changed)
    st.session_state["queues_flash"] = done + (f" (output {outputs})" if outputs else "") + "."
    deps.forget_queues()


problem = st.session_state.pop("queues_problem", None)
if problem:
    st.error(problem, icon=":material/error:")

controls = st.columns([2, 2, 4])
hours = (
    controls[0].segmented_control(
        "Throughput over",
        [6, 24, 72],
        default=24,
        format_func=lambda h: f"{h} h",
        key="queues_hours",
        required=True,
    )
    or 24
)
live = controls[1].toggle("Live (every 5 s)", key="queues_live")


@st.fragment(run_every=5 if live else None)
@ui.guarded
def overview() -> None:
    data = deps.queue_overview(pool, user, hours)
    counts = charts.job_counts(data.counts)
    totals = counts.sum()
    figures = st.columns(len(JOB_STATUSES))
    for column, (status, label) in zip(figures, JOB_STATUSES.items(), strict=True):
        column.metric(label, f"{int(totals.get(status, 0)):,}")
    st.subheader(":material/table_chart: Jobs per queue and status", anchor=False)
    if len(counts):
        st.dataframe(counts.rename(columns=JOB_STATUSES), key="queues_counts")
    else:
        empty.next_step(pool, user, "No jobs yet.", key="queues", icon=":material/stacks:")
    st.subheader(f":material/speed: Throughput, last {hours} hours", anchor=False)
    if data.throughput:
        charts.draw(charts.throughput(charts.frame(data.throughput)))
    else:
        st.caption("No job queued or finished in this window.")
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
            st.dataframe(charts.frame(data.workers), hide_index=True, key="queues_workers")
        else:
            st.caption(
                "No worker is running: start one with `procrastinate --app=tasks.app worker`."
            )
    with right:
        st.subheader(":material/hourglass_disabled: Stalled jobs", anchor=False)
        if data.stalled_jobs:
            st.dataframe(charts.frame(data.stalled_jobs), hide_index=True, key="queues_stalled")
            st.caption(
                "Workers send these back to the queue (or fail them when their retries "
                "are spent) by themselves."
            )
        else:
            st.caption("None.")


overview()

with ui.database_guard():
    st.subheader(":material/error: Failed jobs", anchor=False)
    cursors: list[int | None] = st.session_state.setdefault("queues_failed_cursors", [None])
    failed = admin.failed_jobs(pool, user, limit=PAGE_SIZE + 1, before_id=cursors[-1])
    has_more, failed = len(failed) > PAGE_SIZE, failed[:PAGE_SIZE]
    if not failed:
        st.caption("No failed jobs.")
    for job in failed:
        with st.container(border=True):
            about, error, action = st.columns([2, 5, 1], vertical_alignment="center")
            about.markdown(f"**Job {job.job_id}** · {job.queue_name}")
            about.caption(f"{job.task_name} · {job.attempts} attempt(s) · {ui.when(job.failed_at)}")
            if job.output_id:
                with about:
                    ui.output_link(job.output_id, f"Output #{job.output_id} ({job.user_name})")
            error.code(job.error_message or "(no error recorded)", language=None, wrap_lines=True)
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
        st.rerun()
    if pager[1].button(
        "Older", icon=":material/chevron_right:", disabled=not has_more, key="failed_older"
    ):
        cursors.append(failed[-1].job_id)
        st.rerun()

    st.subheader(":material/schedule: Waiting jobs", anchor=False)
    waiting = admin.waiting_jobs(pool, user, limit=PAGE_SIZE)
    if not waiting:
        st.caption("Nothing is waiting.")
    for job in waiting:
        with st.container(border=True):
            about, detail, action = st.columns([2, 5, 1], vertical_alignment="center")
            about.markdown(f"**Job {job.job_id}** · {job.queue_name} · priority {job.priority}")
            about.caption(f"{job.task_name} · queued {ui.when(job.queued_at)}")
            if job.output_id:
                with detail:
                    ui.output_link(
                        job.output_id, f"Output #{job.output_id} ({job.user_name}, {job.model})"
                    )
            action.button(
                "Cancel",
                icon=":material/cancel:",
                key=f"cancel_{job.job_id}",
                on_click=act,
                args=("cancel", job.job_id),
            )
    if len(waiting) == PAGE_SIZE:
        st.caption(f"The next {PAGE_SIZE} to run are shown.")
