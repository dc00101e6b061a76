"""A provider failing at random: every job ends completed or failed exactly once, by the retry
policy, and a 4xx other than 408/429 is never retried."""

from __future__ import annotations

from collections import defaultdict

from tasks import outputs as jobs
from tests.support.provider import chaos

TRANSIENT = {500, 502, 503, 429, "timeout", "reset"}


async def test_random_provider_failures(pool, analyst, provider, run_worker, settings_env):
    settings_env(MODEL_TIMEOUT="0.5")
    provider.default = chaos(seed=7)
    n = 80
    subs = [
        jobs.submit(
            pool, user=analyst, template="job {{n}}", context={"n": i}, model="openai/chaos"
        )
        for i in range(n)
    ]
    await run_worker(concurrency=10, timeout=120)

    by_prompt: dict[str, list] = defaultdict(list)
    for prompt, outcome in provider.outcomes:
        by_prompt[prompt].append(outcome)
    finals = {"completed": 0, "failed": 0}
    for i, sub in enumerate(subs):
        out = jobs.get_output(pool, sub.output_id, analyst)
        seen = by_prompt[f"job {i}"]
        finals[out.status] += 1
        # one model call per attempt: nothing ran twice, nothing was skipped
        assert len(seen) == out.attempts, (i, seen, out.attempts)
        # every call before the last failed transiently (only those are retried)
        assert all(o in TRANSIENT for o in seen[:-1]), (i, seen)
        assert seen.count(200) <= 1
        if out.status == "completed":
            assert seen[-1] == 200
            assert out.parsed_output == f"answer to job {i}"
        else:
            assert out.status == "failed" and out.error_message
            if seen[-1] == 400:
                assert "BadRequestError" in out.error_message
            else:
                # retries spent: the first attempt and five retries, all transient
                assert len(seen) == 6 and seen[-1] in TRANSIENT
    kinds = {o for _, o in provider.outcomes}
    assert {400, 429, "timeout", "reset"} <= kinds and kinds & {500, 502, 503}
    assert finals["completed"] + finals["failed"] == n
    assert finals["completed"] > n * 0.8
    with pool.connection() as conn:
        left = conn.execute(
            "SELECT count(*) AS n FROM llm_outputs WHERE status IN ('pending', 'processing')"
        ).fetchone()["n"]
        jobs_open = conn.execute(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE status IN "
            "('todo', 'doing') AND task_name = 'llm_job'"
        ).fetchone()["n"]
    assert (left, jobs_open) == (0, 0)
