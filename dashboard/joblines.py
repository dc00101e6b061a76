"""One markdown line (and a grey second line) per job in the Queues page's lists: running,
waiting and failed jobs, with a link to the output. Text from the database is shown as typed:
never markup, never a link."""

from __future__ import annotations

from datetime import datetime

from dashboard import ui
from db.queues import BusyJob, FailedJob, WaitingJob

MARKDOWN_SPECIALS = set("\\`*_{}[]()<>#+-.!|:~$")
ERROR_SHOWN = 300  # characters of a failed job's error; its output page has all of it


def plain(text: object) -> str:
    """Text shown in markdown as typed (every markdown character escaped)."""
    return "".join("\\" + c if c in MARKDOWN_SPECIALS else c for c in str(text))


def ago(value: datetime | None, now: datetime) -> str:
    """How long before now: "12 s", "5 min", "2.5 h"."""
    if value is None:
        return "–"
    seconds = max(0, (now - value).total_seconds())
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _output(job: BusyJob | WaitingJob | FailedJob) -> str:
    if not job.output_id:
        return ""
    who = ", ".join(plain(v) for v in (job.user_name, getattr(job, "model", None)) if v)
    link = f" · [Output #{job.output_id}](output?id={job.output_id})"
    return link + (f" :gray[({who})]" if who else "")


def running(job: BusyJob, now: datetime) -> str:
    return (
        f"**Job {job.job_id}** · {plain(job.queue_name)} · worker {job.worker_id or '–'} · "
        f"running for {ago(job.started_at, now)}{_output(job)}  \n"
        f":gray[{plain(job.task_name)} · attempt {job.attempts + 1} · "
        f"since {ui.when(job.started_at)}]"
    )


def waiting(job: WaitingJob, paused: bool) -> str:
    return (
        f"**Job {job.job_id}** · {plain(job.queue_name)} · priority {job.priority}"
        f"{' · paused' if paused else ''}{_output(job)}  \n"
        f":gray[{plain(job.task_name)} · queued {ui.when(job.queued_at)}]"
    )


def failed(job: FailedJob) -> str:
    error = " ".join((job.error_message or "(no error recorded)").split())
    return (
        f"**Job {job.job_id}** · {plain(job.queue_name)} · {job.attempts} attempt(s) · "
        f"{ui.when(job.failed_at)}{_output(job)}  \n:red[{plain(ui.short(error, ERROR_SHOWN))}]"
    )
