"""What tasks/worker/app.py takes from procrastinate beyond its public API (the fast paths),
checked against the installed procrastinate and a migrated database: a failure here names what
a procrastinate release changed. When a part is gone the worker falls back to procrastinate's
own behaviour with one WARNING; LLMJOBS_WORKER_FAST_PATH=0 uses procrastinate's own worker,
fetch loop and finishes throughout, and jobs still run (a paused queue is still skipped)."""

from __future__ import annotations

import ast
import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import procrastinate
import psycopg
import pytest
import structlog

from tasks import logs
from tasks import outputs as jobs
from tasks.config import get_settings
from tasks.worker import app

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def _worker_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    """The worker module's log events while in this block, whatever logging an earlier test of
    this process configured (a logger used once keeps the configuration it was first used with)."""
    with structlog.testing.capture_logs() as logged:
        monkeypatch.setattr(app, "log", structlog.get_logger("llmjobs.worker"))
        yield logged


def test_procrastinate_still_builds_its_worker_where_we_build_ours():
    assert "_worker" in vars(procrastinate.App), "procrastinate.App._worker is gone"
    assert callable(getattr(procrastinate.worker.Worker, "_fetch_and_process_jobs", None)), (
        "procrastinate's Worker has no _fetch_and_process_jobs loop to replace"
    )


async def test_our_worker_finds_every_private_part_it_uses(opened_app):
    worker = opened_app._worker(concurrency=2)
    assert isinstance(worker, app.LLMJobsWorker)
    assert app.missing_internals(worker) == []


def test_the_database_has_the_versioned_functions_our_statements_call(database_url):
    with psycopg.connect(database_url) as conn:
        found = {
            row[0]
            for row in conn.execute(
                "SELECT proname FROM pg_proc WHERE proname = ANY(%s)",
                (list(app.PROCRASTINATE_FUNCTIONS),),
            )
        }
    assert sorted(set(app.PROCRASTINATE_FUNCTIONS) - found) == []


async def test_a_missing_part_gives_procrastinates_worker_and_one_warning(opened_app, monkeypatch):
    monkeypatch.setattr(app, "WORKER_INTERNALS", (*app.WORKER_INTERNALS, "_gone_in_3_11"))
    logs.forget_warnings()
    with _worker_logs(monkeypatch) as logged:
        built = [opened_app._worker(concurrency=2) for _ in range(2)]
    assert all(type(w) is procrastinate.worker.Worker for w in built)
    warnings = [e for e in logged if "fast path unavailable" in e["event"]]
    assert len(warnings) == 1 and "_gone_in_3_11" in warnings[0]["detail"]


async def test_a_missing_versioned_function_is_said_once(opened_app, monkeypatch):
    monkeypatch.setattr(
        app, "PROCRASTINATE_FUNCTIONS", (*app.PROCRASTINATE_FUNCTIONS, "procrastinate_x_v9")
    )
    logs.forget_warnings()
    with _worker_logs(monkeypatch) as logged:
        await app._check_functions(opened_app.connector)
        await app._check_functions(opened_app.connector)
    warnings = [e for e in logged if "fast path unavailable" in e["event"]]
    assert len(warnings) == 1 and "procrastinate_x_v9" in warnings[0]["detail"]


async def test_with_the_fast_paths_off_procrastinate_runs_the_jobs(
    database_url, pool, analyst, opened_app, run_worker, monkeypatch
):
    monkeypatch.setenv("LLMJOBS_WORKER_FAST_PATH", "0")
    get_settings.cache_clear()
    try:
        # procrastinate's own worker; its jobs finish one statement each, as procrastinate's do
        assert type(opened_app._worker(concurrency=2)) is procrastinate.worker.Worker
        finishes = []
        original = procrastinate.manager.JobManager.finish_job_by_id_async

        async def counted(self, **kwargs):
            finishes.append(kwargs["job_id"])
            return await original(self, **kwargs)

        monkeypatch.setattr(procrastinate.manager.JobManager, "finish_job_by_id_async", counted)
        subs = [
            jobs.submit(
                pool, user=analyst, template="Say {{n}}", context={"n": n}, model="offline/echo"
            )
            for n in range(5)
        ]
        await run_worker(concurrency=2)
    finally:
        get_settings.cache_clear()
    outs = [jobs.get_output(pool, s.output_id, analyst) for s in subs]
    assert [(o.status, o.attempts) for o in outs] == [("completed", 1)] * 5
    assert len(finishes) >= 5
    assert all(o.raw_response and f"Say {n}" in o.raw_response for n, o in enumerate(outs))


@pytest.mark.fast_path
async def test_a_notification_during_a_fetch_is_kept_for_the_next_one(opened_app, monkeypatch):
    """A job notified while a fetch runs, too late for the fetch to see it: the worker's event
    stays set, so it fetches again at once rather than at the next poll."""
    worker = app.LLMJobsWorker(app=opened_app, concurrency=4, wait=False)
    worker._job_semaphore = asyncio.Semaphore(4)
    worker.worker_id = await opened_app.job_manager.register_worker()
    worker._new_job_event.set()  # the notification that woke this fetch

    async def fetch_while_a_job_arrives(queues, worker_id, count):
        worker._new_job_event.set()  # procrastinate's listener, mid-statement
        return []

    monkeypatch.setattr(opened_app.job_manager, "fetch_jobs", fetch_while_a_job_arrives)
    await worker._fetch_and_start_jobs()
    assert worker._new_job_event.is_set()
    assert worker._job_semaphore._value == 4  # every slot it took for the fetch given back

    async def fetch_nothing(queues, worker_id, count):
        return []

    monkeypatch.setattr(opened_app.job_manager, "fetch_jobs", fetch_nothing)
    await worker._fetch_and_start_jobs()
    assert not worker._new_job_event.is_set()  # seen: the next fetch waits for news


# Where procrastinate's private parts may be named: the worker's fence and this module.
FENCED = {"tasks/worker/app.py", "tests/integration/test_procrastinate_contract.py"}


def private_uses(root: Path = ROOT) -> list[str]:
    """file:line for each attribute of procrastinate's worker we rely on, used outside FENCED."""
    found = []
    for folder in ("tasks", "api", "dashboard", "db", "bench", "tests"):
        for path in sorted((root / folder).rglob("*.py")):
            where = str(path.relative_to(root))
            if where in FENCED:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr in app.WORKER_INTERNALS:
                    found.append(f"{where}:{node.lineno} {node.attr}")
    return found


def test_procrastinates_private_parts_are_named_in_the_fence_only(tmp_path):
    assert private_uses() == []
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_probe.py").write_text(
        "def f(worker):\n    worker._stop_event.set()\n"
    )
    assert private_uses(tmp_path) == ["tests/test_probe.py:2 _stop_event"]


def test_our_fetch_copies_the_job_choice_of_the_installed_procrastinate(database_url):
    # provider limits choose jobs with a copy of procrastinate_fetch_job_v2's query
    with psycopg.connect(database_url) as conn:
        found = conn.execute(
            "SELECT md5(regexp_replace(prosrc, '\\s+', ' ', 'g')) FROM pg_proc"
            " WHERE proname = 'procrastinate_fetch_job_v2'"
        ).fetchone()
    assert found == (app.FETCH_JOB_V2_MD5,), (
        "procrastinate_fetch_job_v2 changed: bring llmjobs_fetch_jobs's copy of its job choice "
        "(a new migration) and FETCH_JOB_V2_MD5 up to date"
    )


async def test_another_job_choice_turns_the_limits_off_with_one_warning(
    opened_app, pool, analyst, admin, provider, monkeypatch
):
    from tasks import limits

    manager = opened_app.job_manager
    limits.set_limit(pool, admin, "openai/", rpm=1)
    ids = [
        jobs.submit(pool, user=analyst, template="t {{n}}", context={"n": i}, model="openai/m")
        for i in range(3)
    ]
    await app._check_job_choice(opened_app.connector, manager)
    assert manager.limits_on
    taken = await manager.fetch_jobs(None, None, 3)
    assert [job.task_kwargs["output_id"] for job in taken] == [ids[0].output_id]

    monkeypatch.setattr(app, "FETCH_JOB_V2_MD5", "0" * 32)
    logs.forget_warnings()
    with _worker_logs(monkeypatch) as logged:
        for _ in range(2):
            await app._check_job_choice(opened_app.connector, manager)
    assert not manager.limits_on
    warnings = [e for e in logged if "provider limits are off" in e["event"]]
    assert len(warnings) == 1 and warnings[0]["expected"] == "0" * 32
    taken = await manager.fetch_jobs(None, None, 3)
    assert [job.task_kwargs["output_id"] for job in taken] == [s.output_id for s in ids[1:]]
    manager.limits_on = True
