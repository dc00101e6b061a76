"""Structured logs: one JSON line per event with the documented fields; no secret ever."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tasks import feedback
from tasks import outputs as jobs
from tasks.logs import configure_logging
from tests.support.provider import error, ok

SECRET = "sk-test-secret-key-0123456789"


@pytest.fixture
def captured_logs():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("INFO", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


async def test_job_events_are_json_lines_with_fields(
    pool, analyst, provider, run_worker, captured_logs
):
    provider.push(error(503, "busy"), ok("fine"))
    provider.push(error(401, f"Incorrect API key provided: {SECRET}"))
    ok_sub = jobs.submit(pool, user=analyst, template="T {{x}}", context={"x": 1}, model="openai/m")
    await run_worker(concurrency=1)
    bad_sub = jobs.submit(
        pool, user=analyst, template="T {{x}}", context={"x": 2}, model="openai/m"
    )
    await run_worker(concurrency=1)
    feedback.set_feedback(pool, ok_sub.output_id, analyst, "thumbs_up")

    events = captured_logs()
    by_message: dict[str, list[dict]] = {}
    for e in events:
        assert {"level", "message", "timestamp"} <= e.keys()
        assert e["timestamp"].endswith("Z")
        by_message.setdefault(e["message"], []).append(e)

    queued = by_message["queued"][0]
    assert {queued["output_id"], queued["job_id"], queued["model"], queued["user_id"]} >= {
        ok_sub.output_id,
        "openai/m",
        analyst.id,
    }
    started = by_message["started"][0]
    assert {"job_id", "output_id", "template", "model", "user_id", "attempt"} <= started.keys()
    retry = by_message["retry scheduled"][0]
    assert retry["output_id"] == ok_sub.output_id and retry["retry_in_s"] >= 0
    assert "ServiceUnavailableError" in retry["error"]
    completed = by_message["completed"][0]
    assert completed["attempt"] == 2 and completed["duration_ms"] >= 0
    assert completed["response_length"] == len("fine")
    failed = next(e for e in by_message["failed"] if e.get("output_id") == bad_sub.output_id)
    assert failed["level"] == "error" and "AuthenticationError" in failed["error"]
    assert by_message["feedback"][0]["new"] == "thumbs_up"

    everything = json.dumps(events)
    assert SECRET not in everything
    assert "***" in failed["error"]
    stored = jobs.get_output(pool, bad_sub.output_id, analyst).error_message
    assert SECRET not in stored and "***" in stored


def test_library_sentinels_are_not_logged(captured_logs, monkeypatch):
    import litellm  # noqa: F401  (stamps uvicorn's and asyncio's records with a sentinel)

    # An earlier uvicorn start in this process may have configured its loggers not to propagate.
    monkeypatch.setattr(logging.getLogger("uvicorn"), "propagate", True)
    monkeypatch.setattr(logging.getLogger("uvicorn.error"), "propagate", True)
    monkeypatch.setattr(logging.getLogger("uvicorn.error"), "disabled", False)
    uvicorn_error = logging.getLogger("uvicorn.error")
    level = uvicorn_error.level
    uvicorn_error.setLevel(logging.INFO)
    try:
        uvicorn_error.info("Uvicorn running on %s", "http://127.0.0.1:1")
    finally:
        uvicorn_error.setLevel(level)
    logging.getLogger("asyncio").warning("slow callback")
    lines = captured_logs()
    assert [line["message"] for line in lines][-2:] == [
        "Uvicorn running on http://127.0.0.1:1",
        "slow callback",
    ]
    assert not any("litellm_redacted" in line for line in lines)


def _upkeep_record(action: str, result: object = None) -> logging.LogRecord:
    record = logging.getLogger("procrastinate.worker").makeRecord(
        "procrastinate.worker", logging.INFO, __file__, 0, f"{action} line", (), None
    )
    record.action = action
    record.job = {"id": 1, "queue": "maintenance", "task_name": "llmjobs.recover_stalled_jobs"}
    record.result = result
    return record


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_maintenance_that_did_nothing_logs_at_debug(level):
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(level, stream=stream)
    try:
        for action in ("periodic_task_deferred", "start_job", "job_success"):
            root.handlers[0].handle(_upkeep_record(action))
        root.handlers[0].handle(_upkeep_record("job_success", {"retried": 1, "failed": 0}))
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    quiet = [(line["message"], line["level"]) for line in lines]
    expected_quiet = [
        ("periodic_task_deferred line", "debug"),
        ("start_job line", "debug"),
        ("job_success line", "debug"),
    ]
    assert quiet == [*(expected_quiet if level == "DEBUG" else []), ("job_success line", "info")]


async def test_idle_maintenance_jobs_log_nothing_at_info(pool, run_worker, captured_logs):
    from tasks.worker.maintenance import recover_stalled_jobs_task, refresh_analytics_task

    await recover_stalled_jobs_task.defer_async(timestamp=0)
    await refresh_analytics_task.defer_async(timestamp=0)

    def jobs_done() -> bool:
        with pool.connection() as conn:
            statuses = conn.execute("SELECT status FROM procrastinate_jobs").fetchall()
        # the worker's periodic deferrer may add one of its own
        return len(statuses) >= 2 and {row["status"] for row in statuses} == {"succeeded"}

    await run_worker(until=jobs_done, queues=["maintenance"])
    assert jobs_done()
    about_jobs = [
        line["message"]
        for line in captured_logs()
        if line["message"].startswith(("Starting job llmjobs.", "Job llmjobs."))
    ]
    assert about_jobs == []
