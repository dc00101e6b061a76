"""The worker end to end: real Postgres, the real procrastinate worker loop, real litellm calls to
the offline model and to a scripted OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time

import pytest
from procrastinate.jobs import Status

from tasks import outputs as jobs
from tests.support.provider import Step, error, ok


def _submit(pool, user, **overrides):
    params = {
        "template": "Explain {{concept}} to a beginner",
        "context": {"concept": "recursion"},
        "model": "offline/echo",
        "format": "text",
        **overrides,
    }
    return jobs.submit(pool, user=user, **params)


def _submit_many(pool, user, count: int):
    contexts = [{"concept": f"c{i}"} for i in range(count)]
    return jobs.submit_many(
        pool,
        user=user,
        template="Explain {{concept}} to a beginner",
        model="offline/echo",
        contexts=contexts,
    )


def _output(pool, user, sub):
    return jobs.get_output(pool, sub.output_id, user)


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "html"])
async def test_offline_model_completes_each_format(pool, analyst, run_worker, fmt):
    sub = _submit(pool, analyst, format=fmt)
    assert _output(pool, analyst, sub).status == "pending"
    await run_worker()
    out = _output(pool, analyst, sub)
    assert out.status == "completed", out.error_message
    assert out.prompt == "Explain recursion to a beginner"
    assert out.attempts == 1
    assert out.prompt_tokens and out.completion_tokens
    assert float(out.cost) == 0.0
    assert out.latency_ms is not None and out.started_at and out.completed_at
    if fmt == "json":
        assert out.parsed_output["prompt"] == "Explain recursion to a beginner"
        assert json.loads(out.raw_response) == out.parsed_output
    elif fmt == "html":
        assert out.parsed_output.startswith("<h2>")
    elif fmt == "markdown":
        assert out.parsed_output.startswith("## Answer")
    else:
        assert out.parsed_output == "Echo: Explain recursion to a beginner"


async def test_provider_success_per_format(pool, analyst, run_worker, provider):
    provider.push(ok("plain words"), ok('{"a": 1}'), ok("# Title"), ok("<p onclick='x()'>hi</p>"))
    subs = [
        _submit(pool, analyst, model="openai/test-model", format=fmt)
        for fmt in ("text", "json", "markdown", "html")
    ]
    await run_worker(concurrency=1)
    got = [_output(pool, analyst, s) for s in subs]
    assert [o.status for o in got] == ["completed"] * 4
    assert [o.parsed_output for o in got] == ["plain words", {"a": 1}, "# Title", "<p>hi</p>"]
    assert got[3].raw_response == "<p onclick='x()'>hi</p>"
    # the json request carried the format instruction as the system message
    assert "valid JSON" in provider.requests[1]["messages"][0]["content"]


async def test_429_with_retry_after_then_success(pool, analyst, run_worker, provider):
    provider.push(error(429, "slow down", retry_after="0"), ok("finally"))
    sub = _submit(pool, analyst, model="openai/test-model")
    await run_worker()
    out = _output(pool, analyst, sub)
    assert out.status == "completed"
    assert out.parsed_output == "finally"
    assert out.attempts == 2
    assert len(provider.requests) == 2


async def test_500_six_times_fails_after_five_retries(pool, analyst, run_worker, provider):
    provider.push(*[error(500, "boom") for _ in range(7)])
    sub = _submit(pool, analyst, model="openai/test-model")
    await run_worker()
    out = _output(pool, analyst, sub)
    assert out.status == "failed"
    assert out.attempts == 6
    assert len(provider.requests) == 6
    assert "boom" in out.error_message and "InternalServerError" in out.error_message


async def test_401_fails_without_retry(pool, analyst, run_worker, provider):
    provider.push(error(401, "bad key"), ok("never reached"))
    sub = _submit(pool, analyst, model="openai/test-model")
    await run_worker()
    out = _output(pool, analyst, sub)
    assert out.status == "failed"
    assert out.attempts == 1
    assert len(provider.requests) == 1
    assert "AuthenticationError" in out.error_message
    assert out.prompt == "Explain recursion to a beginner"  # kept with the failure


async def test_invalid_json_is_reasked_twice_then_fails(pool, analyst, run_worker, provider):
    provider.push(ok("not json"), ok("still {not json"), ok("nope"), ok('{"late": true}'))
    sub = _submit(pool, analyst, model="openai/test-model", format="json")
    await run_worker()
    out = _output(pool, analyst, sub)
    assert out.status == "failed"
    assert len(provider.requests) == 3
    assert "not valid JSON" in out.error_message
    assert out.raw_response == "nope"
    # the re-ask shows the model its bad answer
    assert provider.requests[1]["messages"][-2] == {"role": "assistant", "content": "not json"}


async def test_invalid_json_then_valid_on_reask(pool, analyst, run_worker, provider):
    provider.push(ok("Sure! here it is"), ok('```json\n{"ok": true}\n```'))
    sub = _submit(pool, analyst, model="openai/test-model", format="json")
    await run_worker()
    out = _output(pool, analyst, sub)
    assert out.status == "completed"
    assert out.parsed_output == {"ok": True}
    assert out.attempts == 1


async def test_timeout_is_retried(pool, analyst, run_worker, provider, settings_env):
    settings_env(MODEL_TIMEOUT="0.5")
    provider.push(Step(content="late", delay=1.5), ok("in time"))
    sub = _submit(pool, analyst, model="openai/test-model")
    await run_worker()
    out = _output(pool, analyst, sub)
    assert out.status == "completed"
    assert out.parsed_output == "in time"
    assert out.attempts == 2


async def test_dropped_connection_is_retried(pool, analyst, run_worker, provider):
    provider.push(Step(drop=True), ok("recovered"))
    sub = _submit(pool, analyst, model="openai/test-model")
    await run_worker()
    out = _output(pool, analyst, sub)
    assert (out.status, out.attempts) == ("completed", 2)


async def test_system_prompt_of_agent_is_sent(pool, analyst, run_worker, provider):
    from tasks import agents

    agents.create_agent(
        pool,
        analyst,
        name="tutor",
        default_model="openai/test-model",
        system_prompt="You are a patient tutor.",
    )
    provider.push(ok("answer"))
    sub = _submit(pool, analyst, model=None, agent="tutor")
    await run_worker()
    out = _output(pool, analyst, sub)
    assert out.status == "completed" and out.model == "openai/test-model"
    assert provider.requests[0]["messages"][0] == {
        "role": "system",
        "content": "You are a patient tutor.",
    }
    assert out.system_prompt == "You are a patient tutor."


async def test_high_queue_runs_before_default_before_low(pool, analyst, run_worker, provider):
    order = [("low", "L"), ("default", "D"), ("high", "H"), ("low", "L2"), ("high", "H2")]
    for queue, word in order:
        _submit(
            pool,
            analyst,
            model="openai/test-model",
            queue=queue,
            template="say {{w}}",
            context={"w": word},
        )
    await run_worker(concurrency=1)
    sent = [r["messages"][-1]["content"] for r in provider.requests]
    assert sent == ["say H", "say H2", "say D", "say L", "say L2"]


@pytest.mark.fast_path
@pytest.mark.parametrize(("fetchers", "most_at_once"), [("1", 1), ("4", 4)])
async def test_fetch_loops_share_the_slots_and_run_each_job_once(
    pool, analyst, run_worker, opened_app, settings_env, monkeypatch, fetchers, most_at_once
):
    settings_env(WORKER_FETCHERS=fetchers)
    manager = opened_app.job_manager
    real_fetch = manager.fetch_jobs
    in_flight = {"now": 0, "most": 0}
    fetches: list[tuple[int, int]] = []  # (free slots asked for, jobs taken)
    llm_jobs_taken: list[int] = []

    async def counted_fetch(queues, worker_id, count):
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
        try:
            found = await real_fetch(queues, worker_id, count)
            fetches.append((count, len(found)))
            llm_jobs_taken.extend(job.id for job in found if job.task_name == "llm_job")
            return found
        finally:
            in_flight["now"] -= 1

    monkeypatch.setattr(manager, "fetch_jobs", counted_fetch)
    subs = _submit_many(pool, analyst, 60)
    await run_worker(concurrency=20)
    outs = [jobs.get_output(pool, output_id, analyst) for output_id in subs.output_ids]
    assert [o.status for o in outs] == ["completed"] * 60
    assert {o.attempts for o in outs} == {1}
    with pool.connection() as conn:
        runs = conn.execute(
            "SELECT count(*) AS n FROM procrastinate_events WHERE type = 'started' "
            "AND job_id = ANY(%s)",
            ([o.job_id for o in outs],),
        ).fetchone()["n"]
    assert runs == 60
    assert 1 <= in_flight["most"] <= most_at_once
    # every slot is free at first: each loop takes one, and the first takes the rest with it,
    # as many jobs in one statement
    assert max(taken for _, taken in fetches) == 20 - (most_at_once - 1)
    assert all(taken <= asked <= 20 for asked, taken in fetches)
    assert sorted(llm_jobs_taken) == sorted(o.job_id for o in outs)


@pytest.mark.fast_path
async def test_a_fetch_takes_jobs_in_procrastinate_order_and_respects_locks(
    pool, analyst, opened_app
):
    """One statement taking several jobs takes what as many single fetches would: by priority,
    then age, and never two jobs holding the same lock."""
    manager = opened_app.job_manager
    defer = opened_app.configure_task(
        name="tasks.worker.maintenance.noop_for_order", queue="default"
    )
    low = [await defer.defer_async(n=n) for n in range(3)]
    high = await opened_app.configure_task(
        name="tasks.worker.maintenance.noop_for_order", priority=5
    ).defer_async(n=9)
    locked = [
        await opened_app.configure_task(
            name="tasks.worker.maintenance.noop_for_order", lock="one-at-a-time"
        ).defer_async(n=20 + n)
        for n in range(2)
    ]
    worker_id = await manager.register_worker()
    taken = await manager.fetch_jobs(None, worker_id, 10)
    assert [job.id for job in taken] == [high, *low, locked[0]]
    assert {job.status for job in taken} == {"doing"}
    assert await manager.fetch_jobs(None, worker_id, 10) == []  # the second lock holder waits
    await manager.finish_job_by_id_async(locked[0], Status.SUCCEEDED, delete_job=False)
    assert [job.id for job in await manager.fetch_jobs(None, worker_id, 10)] == [locked[1]]


def test_the_pool_grows_with_concurrency_up_to_a_cap(settings_env):
    from tasks.worker.app import worker_pool_size

    sizes = {}
    for concurrency in ("1", "10", "18", "200"):
        settings_env(WORKER_CONCURRENCY=concurrency)
        sizes[concurrency] = worker_pool_size()
    assert sizes == {"1": 4, "10": 12, "18": 20, "200": 20}
    settings_env(WORKER_CONCURRENCY="200", WORKER_POOL_SIZE="50")
    assert worker_pool_size() == 50


@pytest.fixture
def small_worker_pool(settings_env):
    """A worker pool of 4 connections (set before the app opens)."""
    settings_env(WORKER_POOL_SIZE="4")


@pytest.fixture
def slow_model():
    """An in-process model answering each call after 0.3 s; yields (name, calls in flight)."""
    import litellm
    from litellm import CustomLLM

    from tasks.llm import calls

    in_flight = {"now": 0, "most": 0}

    class Slow(CustomLLM):
        async def acompletion(self, model, messages, *args, **kwargs):
            in_flight["now"] += 1
            in_flight["most"] = max(in_flight["most"], in_flight["now"])
            try:
                await asyncio.sleep(0.3)
            finally:
                in_flight["now"] -= 1
            return litellm.ModelResponse(
                model=model,
                choices=[{"index": 0, "message": {"role": "assistant", "content": "fine"}}],
                usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            )

    calls.register_provider("slowstub", Slow())
    try:
        yield "slowstub/any", in_flight
    finally:
        calls.unregister_provider("slowstub")


@pytest.mark.fast_path
async def test_two_hundred_jobs_in_flight_share_a_pool_of_four(
    small_worker_pool, slow_model, pool, analyst, run_worker, opened_app
):
    """Jobs hold a connection only for a statement, and their statements are coalesced: a pool
    of 4 serves 200 jobs in flight at once."""
    model, in_flight = slow_model
    assert opened_app.connector.pool.max_size == 4
    subs = jobs.submit_many(
        pool,
        user=analyst,
        template="say {{n}}",
        model=model,
        contexts=[{"n": n} for n in range(200)],
    )
    manager = opened_app.job_manager
    answers, starts = manager._answers, manager._starts
    answered, answer_statements, started = answers.items, answers.statements, starts.items
    await run_worker(concurrency=200, timeout=60)
    outs = [jobs.get_output(pool, output_id, analyst) for output_id in subs.output_ids]
    assert {o.status for o in outs} == {"completed"}
    assert {o.parsed_output for o in outs} == {"fine"}
    assert in_flight["most"] >= 100
    # answers that arrived together were stored together: far fewer statements than answers
    assert answers.items - answered == 200
    assert answers.statements - answer_statements <= 100
    # every attempt was started by the fetch that took its job: no start statement of its own
    assert starts.items == started


@pytest.mark.fast_path
async def test_a_fetch_starts_the_attempts_of_the_llm_jobs_it_takes(pool, analyst, opened_app):
    """The statement taking jobs also marks each LLM job's output processing for its next
    attempt, and the job's start of its attempt returns that output without a statement of its
    own. A second job of the same output, an output already final, and another task's job are
    not started there."""
    manager = opened_app.job_manager
    fresh, twice, final = (_submit(pool, analyst, context={"concept": c}) for c in "abc")
    second_job = await opened_app.configure_task(name="llm_job").defer_async(
        output_id=twice.output_id
    )
    other = await opened_app.configure_task(
        name="tasks.worker.maintenance.noop_for_order"
    ).defer_async(n=1)
    with pool.connection() as conn:
        conn.execute(
            "UPDATE llm_outputs SET status = 'completed', completed_at = now() WHERE id = %s",
            (final.output_id,),
        )
    worker_id = await manager.register_worker()
    taken = await manager.fetch_jobs(None, worker_id, 10)
    assert [job.id for job in taken] == [
        fresh.job_id,
        twice.job_id,
        final.job_id,
        second_job,
        other,
    ]
    # not started here: each of the other jobs starts (or finds final) its output itself
    assert set(manager._started) == {fresh.job_id, twice.job_id}
    statements = manager._starts.statements
    row = await manager.start_attempt(fresh.job_id, fresh.output_id, 1)
    assert row.id == fresh.output_id and row.attempts == 1
    assert row.status == "processing" and row.started_at is not None
    assert manager._starts.statements == statements  # no statement: the fetch started it
    # the fetch's start is returned once: asked again, a statement finds attempt 1 taken
    assert await manager.start_attempt(fresh.job_id, fresh.output_id, 1) is None
    assert (await manager.start_attempt(twice.job_id, twice.output_id, 1)).id == twice.output_id
    assert manager._started == {}
    assert _output(pool, analyst, fresh).status == "processing"
    assert _output(pool, analyst, final).status == "completed"


async def test_a_worker_starts_from_the_database_not_from_an_earlier_fetch(
    pool, analyst, opened_app, run_worker
):
    """A fetch whose jobs no worker ran (the worker stopped in between) leaves nothing that a
    later worker of the same app uses: a new job that has the same id (another database, a
    restored one) runs its own output."""
    manager = opened_app.job_manager
    earlier = _submit(pool, analyst, context={"concept": "earlier"})
    assert [job.id for job in await manager.fetch_jobs(None, None, 5)] == [earlier.job_id]
    with pool.connection() as conn:
        conn.execute("UPDATE llm_outputs SET job_id = NULL WHERE id = %s", (earlier.output_id,))
        conn.execute("DELETE FROM procrastinate_jobs WHERE id = %s", (earlier.job_id,))
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('procrastinate_jobs', 'id'), %s, false)",
            (earlier.job_id,),
        )
    later = _submit(pool, analyst, context={"concept": "later"})
    assert later.job_id == earlier.job_id
    await run_worker(until=lambda: _output(pool, analyst, later).status != "pending", timeout=15)
    out = _output(pool, analyst, later)
    assert out.status == "completed", out.error_message
    assert out.prompt == "Explain later to a beginner"
    assert _output(pool, analyst, earlier).status == "processing"  # its fetch started it


@pytest.mark.fast_path
async def test_a_job_whose_output_its_fetch_could_not_see_still_runs(pool, analyst, opened_app):
    """The fetch takes a fresh snapshot for each job it takes, so it can take a job whose output
    was committed after the statement began, and which the statement's start of attempts does
    not see. The fetch's miss decides nothing: the job starts its output itself."""
    from procrastinate import job_context

    from tasks.worker.job import llm_job

    manager = opened_app.job_manager
    sub = _submit(pool, analyst)
    with pool.connection() as conn:  # the output unseen by the fetch
        conn.execute(
            "CREATE TEMP TABLE hidden AS SELECT * FROM llm_outputs WHERE id = %s",
            (sub.output_id,),
        )
        conn.execute("DELETE FROM llm_outputs WHERE id = %s", (sub.output_id,))
        conn.commit()
        worker_id = await manager.register_worker()
        [job] = await manager.fetch_jobs(None, worker_id, 5)
        assert manager._started == {}
        conn.execute("INSERT INTO llm_outputs OVERRIDING SYSTEM VALUE SELECT * FROM hidden")
        conn.execute("DROP TABLE hidden")
    context = job_context.JobContext(
        app=opened_app,
        job=job,
        worker_name="test",
        start_timestamp=time.time(),
        abort_reason=lambda: None,
    )
    await llm_job.func(context, output_id=sub.output_id)
    out = _output(pool, analyst, sub)
    assert (out.status, out.attempts) == ("completed", 1)


@pytest.mark.fast_path
async def test_a_job_whose_fetch_started_its_output_runs_it_once(
    pool, analyst, run_worker, opened_app
):
    """Two jobs of one output taken together: the output is answered once, by one attempt, and
    the other job ends without calling the model."""
    sub = _submit(pool, analyst)
    await opened_app.configure_task(name="llm_job").defer_async(output_id=sub.output_id)

    def runs() -> dict:
        with pool.connection() as conn:
            return conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'succeeded') AS ok, count(*) AS n "
                "FROM procrastinate_jobs WHERE args->>'output_id' = %s",
                (str(sub.output_id),),
            ).fetchone()

    await run_worker(until=lambda: runs()["ok"] == 2)
    out = _output(pool, analyst, sub)
    assert out.status == "completed" and out.attempts == 1
    assert (runs()["ok"], runs()["n"]) == (2, 2)
    with pool.connection() as conn:
        started = conn.execute(
            "SELECT count(*) AS n FROM procrastinate_events e JOIN procrastinate_jobs j "
            "ON j.id = e.job_id WHERE e.type = 'started' AND j.args->>'output_id' = %s",
            (str(sub.output_id),),
        ).fetchone()["n"]
    assert started == 2


async def test_each_answered_job_ends_succeeded_once(pool, analyst, run_worker, opened_app):
    """Jobs whose finishes are sent together end as procrastinate's own finish leaves them:
    succeeded, with one succeeded event each."""
    subs = _submit_many(pool, analyst, 12)
    await run_worker(concurrency=6)
    outs = [jobs.get_output(pool, output_id, analyst) for output_id in subs.output_ids]
    assert {o.status for o in outs} == {"completed"}
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT j.status, count(e.id) FILTER (WHERE e.type = 'succeeded') AS succeeded "
            "FROM procrastinate_jobs j LEFT JOIN procrastinate_events e ON e.job_id = j.id "
            "WHERE j.id = ANY(%s) GROUP BY j.id",
            (subs.job_ids,),
        ).fetchall()
    assert [(r["status"], r["succeeded"]) for r in rows] == [("succeeded", 1)] * 12


async def test_a_worker_deleting_succeeded_jobs_deletes_them(pool, analyst, run_worker):
    """With delete_jobs="successful" the worker's finish deletes each answered job, as
    procrastinate does."""
    subs = _submit_many(pool, analyst, 4)
    await run_worker(delete_jobs="successful")
    outs = [jobs.get_output(pool, output_id, analyst) for output_id in subs.output_ids]
    assert {o.status for o in outs} == {"completed"}
    with pool.connection() as conn:
        left = conn.execute(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE id = ANY(%s)", (subs.job_ids,)
        ).fetchone()["n"]
    assert left == 0


@pytest.mark.fast_path
async def test_finishes_sent_together_fail_alone(pool, analyst, opened_app):
    """A batch of finishes holding a job that is no longer running: that finish fails with
    procrastinate's error, the others are recorded."""
    manager = opened_app.job_manager
    subs = _submit_many(pool, analyst, 3)
    worker_id = await manager.register_worker()
    taken = await manager.fetch_jobs(["default"], worker_id, 3)
    assert sorted(job.id for job in taken) == sorted(subs.job_ids)
    first, *others = sorted(subs.job_ids)
    sent_before = manager._finishes.statements
    await manager.finish_job_by_id_async(first, Status.SUCCEEDED, delete_job=False)
    outcomes = await asyncio.gather(
        *(
            manager.finish_job_by_id_async(job_id, Status.SUCCEEDED, delete_job=False)
            for job_id in (first, *others)
        ),
        return_exceptions=True,
    )
    assert "not in" in str(outcomes[0].__cause__) and outcomes[1:] == [None, None]
    # the lone first finish, then the three together
    assert manager._finishes.statements - sent_before == 2
    with pool.connection() as conn:
        statuses = conn.execute(
            "SELECT status FROM procrastinate_jobs WHERE id = ANY(%s)", (subs.job_ids,)
        ).fetchall()
    assert {r["status"] for r in statuses} == {"succeeded"}


def test_fetch_loops_default_to_one_per_25_slots(settings_env):
    from tasks.worker.app import fetchers_for

    assert [fetchers_for(n) for n in (1, 10, 49, 50, 200, 1000)] == [1, 1, 1, 2, 8, 8]
    settings_env(WORKER_FETCHERS="3")
    assert fetchers_for(200) == 3


@pytest.mark.fast_path
async def test_the_worker_runs_litellms_setup_in_its_loop_thread(pool, analyst, run_worker):
    from tasks.llm import calls
    from tests.support.setup_recorder import SetupRecorder

    recorder = SetupRecorder()
    calls.register_provider("recorder", recorder)
    try:
        subs = [_submit(pool, analyst, model="recorder/any") for _ in range(3)]
        await run_worker()
    finally:
        calls.unregister_provider("recorder")
    outs = [_output(pool, analyst, s) for s in subs]
    assert [o.parsed_output for o in outs] == ["recorded"] * 3
    loop_thread = threading.get_ident()
    assert recorder.setup_threads == [loop_thread] * 3
    assert loop_thread not in recorder.pool_threads  # the call's own pool work stays on threads


async def test_the_worker_hides_what_it_loaded_from_the_garbage_collector(run_worker):
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    await run_worker()
    # litellm's modules and the rest: a few hundred thousand objects no collection walks again
    assert gc.get_freeze_count() > 100_000
