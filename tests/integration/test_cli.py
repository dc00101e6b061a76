"""The `llmjobs` command line against the test database: its commands run by `main` in this
process, the round trip and an interruption by the installed command in a process of its own."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import structlog

from tasks.config import get_settings
from tests.api.test_hostile_input import deep_json
from tests.support.hostile import FORMULAS, NUMBER_AS_TEXT, echo, neutralised

BIN = Path(sys.executable).parent / "llmjobs"
# The command runs this tree's code, wherever the installed package points.
ROOT = Path(__file__).resolve().parents[2]


def llmjobs(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`llmjobs *args` as the command runs it (its exit code, stdout and stderr), in this
    process with `env` added to the environment: the tests need the command's answers, not a new
    interpreter for each. The tests that start the installed command use `llmjobs_process`."""
    from tasks.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    saved = {name: os.environ.get(name) for name in env or {}}
    os.environ.update(env or {})
    get_settings.cache_clear()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's own refusals and --help
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:  # the command's logging wrote to `err`
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)
    return subprocess.CompletedProcess(["llmjobs", *args], code, out.getvalue(), err.getvalue())


def llmjobs_process(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`llmjobs *args` run by the installed command, in a process of its own."""
    return subprocess.run(
        [str(BIN), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_cli_round_trip(database_url, pool, run_worker):
    created = llmjobs_process("users", "create", "cli-user")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["role"] == "analyst"

    result = llmjobs_process(
        "submit",
        "--template",
        "Explain {{concept}} to a beginner",
        "--context",
        '{"concept": "recursion"}',
        "--model",
        "offline/echo",
        "--format",
        "json",
        "--user",
        "cli-user",
    )
    assert result.returncode == 0, result.stderr
    queued = json.loads(result.stdout)
    assert queued["status"] == "queued" and queued["output_id"] > 0 and queued["job_id"] > 0
    assert "estimated_completion" in queued
    # the submit logged one JSON line for the queued event
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(e["message"] == "queued" and e["output_id"] == queued["output_id"] for e in events)

    shown = json.loads(
        llmjobs_process("show", str(queued["output_id"]), "--user", "cli-user").stdout
    )
    assert shown["status"] == "pending"
    listed = json.loads(llmjobs_process("list", "--as-user", "cli-user").stdout)
    assert [o["id"] for o in listed] == [queued["output_id"]]

    models = json.loads(llmjobs_process("models").stdout)
    assert models[0] == {
        "name": "offline/echo",
        "provider": "offline",
        "offline": True,
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
    }


async def test_cli_feedback_rerun_regenerate(database_url, pool, run_worker):
    assert llmjobs("users", "create", "judge").returncode == 0
    queued = json.loads(
        llmjobs(
            "submit",
            "--template",
            "Say {{w}}",
            "--context",
            '{"w": "hi"}',
            "--model",
            "offline/echo",
            "--user",
            "judge",
        ).stdout
    )
    early = llmjobs("feedback", str(queued["output_id"]), "thumbs_up", "--user", "judge")
    assert early.returncode == 1 and "only completed outputs" in early.stderr
    await run_worker()
    fb = llmjobs("feedback", str(queued["output_id"]), "thumbs_up", "--user", "judge")
    assert fb.returncode == 0, fb.stderr
    assert json.loads(fb.stdout)["new_value"] == "thumbs_up"
    rerun = json.loads(llmjobs("rerun", str(queued["output_id"]), "--user", "judge").stdout)
    regen = json.loads(
        llmjobs(
            "regenerate",
            str(queued["output_id"]),
            "--context",
            '{"w": "yo"}',
            "--format",
            "markdown",
            "--user",
            "judge",
        ).stdout
    )
    await run_worker()
    child = json.loads(llmjobs("show", str(regen["output_id"]), "--user", "judge").stdout)
    assert (child["kind"], child["parent_id"], child["format"]) == (
        "regenerate",
        queued["output_id"],
        "markdown",
    )
    assert child["prompt"] == "Say yo" and child["status"] == "completed"
    assert (
        json.loads(llmjobs("show", str(rerun["output_id"]), "--user", "judge").stdout)["kind"]
        == "re_run"
    )


def test_cli_errors_exit_2_with_field_on_stderr(database_url, analyst):
    # Each rule is tested in-process; here, that the CLI reports any of them the same way.
    cases = [
        (["--context", "{}"], "context: missing variables: concept"),
        (["--context", "{not json"], "context: is not valid JSON"),
        (["--context", '{"concept": 1}', "--model", "gpt-4o"], "no worker serves it"),
        (["--context", '{"concept": 1}', "--user", "nobody"], "user: no user named 'nobody'"),
        (["--context", deep_json(33)], "context: is nested too deeply (at most 32 levels"),
        (["--context", deep_json(10_000)], "context: is nested too deeply (at most 32 levels"),
    ]
    for extra, message in cases:
        result = llmjobs(
            "submit",
            "--template",
            "{{concept}}",
            "--model",
            "offline/echo",
            "--user",
            "ana",
            *extra,
        )
        assert result.returncode == 2, (extra, result.stderr)
        assert message in result.stderr
        assert result.stdout == ""


def test_cli_list_refuses_filters_no_output_could_match(database_url, analyst):
    for option, value, message in [
        ("--status", "weird", "status: must be one of pending, processing, completed, failed"),
        ("--model", "a b", "model: must be a model name"),
    ]:
        result = llmjobs("list", "--as-user", "ana", option, value)
        assert result.returncode == 2, (option, result.stderr)
        assert result.stderr.startswith(f"error: {message}") and result.stdout == ""
    fine = llmjobs("list", "--as-user", "ana", "--status", "failed", "--model", "offline/echo")
    assert fine.returncode == 0 and json.loads(fine.stdout) == []


def test_cli_database_url_psycopg_cannot_read_is_a_setting_error():
    result = llmjobs("show", "523", env={"DATABASE_URL": "postgresql://me:s3cret-pw@[::1/db"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: DATABASE_URL: must be a PostgreSQL connection URL "
        "(postgresql://user:password@host:port/database) or key=value connection string"
    ]
    notaurl = llmjobs("show", "523", env={"DATABASE_URL": "notaurl"})
    assert notaurl.returncode == 2 and len(notaurl.stderr.splitlines()) == 1


def test_cli_database_out_of_reach_is_one_line():
    url = "postgresql://me:s3cret-pw@127.0.0.1:9/db"
    result = llmjobs("show", "523", env={"DATABASE_URL": url})
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach the database at 127.0.0.1:9 (DATABASE_URL): ")
    assert "s3cret-pw" not in result.stderr and "Traceback" not in result.stderr


def test_cli_show_of_someone_elses_output_is_not_found(database_url, pool, analyst):
    from tasks.testing import create_test_llm_output

    out = create_test_llm_output(pool, analyst)
    assert llmjobs("users", "create", "nosy").returncode == 0
    result = llmjobs("show", str(out.id), "--user", "nosy")
    assert result.returncode == 1 and f"output {out.id} not found" in result.stderr


def test_cli_tokens(database_url, analyst):
    made = llmjobs("tokens", "create", "ana")
    assert made.returncode == 0
    token = json.loads(made.stdout)["token"]
    assert len(token) > 40
    listed = llmjobs("tokens", "list").stdout
    assert token not in listed and json.loads(listed)[0]["user_name"] == "ana"
    assert token not in made.stderr  # never logged
    assert llmjobs("tokens", "revoke", str(json.loads(listed)[0]["id"])).returncode == 0
    assert json.loads(llmjobs("tokens", "list").stdout)[0]["revoked_at"] is not None


def test_cli_templates_budget_compare_leaderboard(database_url, analyst):
    saved = llmjobs("templates", "save", "explain", "Explain {{c}}", "--user", "ana")
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout)["version"] == 1
    again = json.loads(
        llmjobs("templates", "save", "explain", "Explain {{c}} well", "--user", "ana").stdout
    )
    assert again["version"] == 2
    assert [v["version"] for v in json.loads(llmjobs("templates", "show", "explain").stdout)] == [
        2,
        1,
    ]
    budget = llmjobs("budget", "ana", "2.5")
    assert budget.returncode == 0 and float(json.loads(budget.stdout)["monthly_budget"]) == 2.5
    cmp = llmjobs(
        "compare",
        "submit",
        "--template-name",
        "explain",
        "--context",
        '{"c": 1}',
        "--models",
        "offline/echo",
        "--blind",
        "--user",
        "ana",
    )
    assert cmp.returncode == 2 and "models: give 2 to 6 distinct models" in cmp.stderr
    board = llmjobs("leaderboard", "--user", "ana", "--csv")
    assert board.returncode == 0 and board.stdout.startswith("model,outputs,")


async def test_cli_blind_comparison_shows_no_model_until_the_pick(
    database_url, analyst, run_worker
):
    from tasks.outputs import BLIND_MODEL

    made = llmjobs(
        "compare",
        "submit",
        "--template",
        "Explain {{c}}",
        "--context",
        '{"c": 1}',
        "--models",
        "offline/echo",
        "offline/verbose",
        "--blind",
        "--user",
        "ana",
    )
    assert made.returncode == 0, made.stderr
    assert "offline/" not in made.stdout
    sub = json.loads(made.stdout)
    assert [o["model"] for o in sub["outputs"]] == [BLIND_MODEL, BLIND_MODEL]
    ids = [o["output_id"] for o in sub["outputs"]]
    cid = str(sub["comparison_id"])
    await run_worker()
    compared = llmjobs("compare", "show", cid, "--user", "ana")
    assert "offline/" not in compared.stdout
    one = json.loads(llmjobs("show", str(ids[0]), "--user", "ana").stdout)
    for answer in json.loads(compared.stdout)["outputs"]:  # as `show` gives each of them
        assert (answer["model"], answer["blind_pending"]) == (BLIND_MODEL, True)
        assert (one["model"], one["blind_pending"]) == (BLIND_MODEL, True)
    assert "offline/" not in llmjobs("list", "--as-user", "ana").stdout
    exported = llmjobs("export", "--user", "ana")
    assert exported.returncode == 0 and exported.stdout == ""  # left out until the pick
    again = llmjobs("rerun", str(ids[0]), "--user", "ana")
    assert again.returncode != 0 and "offline/" not in again.stdout + again.stderr

    assert llmjobs("compare", "pick", cid, "tie", "--user", "ana").returncode == 0
    revealed = json.loads(llmjobs("compare", "show", cid, "--user", "ana").stdout)
    models = {o["id"]: o["model"] for o in revealed["outputs"]}
    assert sorted(models.values()) == ["offline/echo", "offline/verbose"]
    assert not any(o["blind_pending"] for o in revealed["outputs"])
    assert (
        json.loads(llmjobs("show", str(ids[0]), "--user", "ana").stdout)["model"]
        == (models[ids[0]])
    )
    lines = llmjobs("export", "--user", "ana").stdout.splitlines()
    assert {json.loads(line)["id"]: json.loads(line)["model"] for line in lines} == models


async def test_cli_batch_and_export(database_url, analyst, run_worker, tmp_path):
    data = tmp_path / "people.csv"
    data.write_text("name\nAda\nBob\n")
    made = llmjobs(
        "batch",
        "submit",
        str(data),
        "--template",
        "Hi {{name}}",
        "--model",
        "offline/echo",
        "--user",
        "ana",
    )
    assert made.returncode == 0, made.stderr
    batch = json.loads(made.stdout)
    assert batch["total"] == 2 and batch["name"] == "people.csv"
    await run_worker()
    results = llmjobs("batch", "results", str(batch["id"]), "--user", "ana")
    assert results.stdout.splitlines()[1].startswith("1,Ada,Echo: Hi Ada,completed")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,x\nAda,1\n,2,3\n")
    refused = llmjobs(
        "batch",
        "submit",
        str(bad),
        "--template",
        "Hi {{name}}",
        "--model",
        "offline/echo",
        "--user",
        "ana",
    )
    assert refused.returncode == 2 and "row 2" in refused.stderr
    exported = llmjobs("export", "--user", "ana")
    assert [json.loads(line)["output"] for line in exported.stdout.splitlines()] == [
        "Echo: Hi Ada",
        "Echo: Hi Bob",
    ]


async def test_cli_batch_results_csv_keeps_formulas_as_text(
    database_url, analyst, provider, run_worker, tmp_path
):
    provider.default = echo  # each answer repeats its row's value
    data = tmp_path / "hostile.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["value", "=note"])
        writer.writerows([value, "@x"] for value in [*FORMULAS, NUMBER_AS_TEXT])
    made = llmjobs(
        "batch", "submit", str(data), "--template", "{{value}}", "--model", "openai/m",
        "--user", "ana",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    batch_id = str(json.loads(made.stdout)["id"])
    await run_worker()

    results = llmjobs("batch", "results", batch_id, "--user", "ana")
    assert results.returncode == 0, results.stderr
    header, *rows = csv.reader(io.StringIO(results.stdout))
    assert header[:3] == ["row", "value", "'=note"]
    table = [dict(zip(header, row, strict=True)) for row in rows]
    written = [*map(neutralised, FORMULAS), NUMBER_AS_TEXT]
    assert [(r["value"], r["output"], r["'=note"]) for r in table] == [
        (cell, cell, "'@x") for cell in written
    ]
    exact = llmjobs("batch", "results", batch_id, "--user", "ana", "--jsonl")
    lines = [json.loads(line) for line in exact.stdout.splitlines()]
    assert [(r["value"], r["output"], r["=note"]) for r in lines] == [
        (value, value, "@x") for value in [*FORMULAS, NUMBER_AS_TEXT]
    ]


def test_cli_interrupted_batch_says_nothing_was_queued(database_url, pool, analyst, tmp_path):
    import signal
    import time

    rows = tmp_path / "big.csv"
    rows.write_text("concept\n" + "".join(f"c{i}\n" for i in range(100_000)))
    batch = ["batch", "submit", str(rows), "--template", "Explain {{concept}}"]
    proc = subprocess.Popen(
        [str(BIN), *batch, "--model", "offline/echo", "--user", "ana"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    time.sleep(4)  # past the imports, well inside the validation of 100,000 rows
    assert proc.poll() is None, "the batch finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert out == ""
    assert err.splitlines()[-1] == "interrupted: nothing was queued"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM llm_outputs").fetchone()["n"] == 0
        assert conn.execute("SELECT count(*) AS n FROM batches").fetchone()["n"] == 0


def test_cli_pauses_lists_and_resumes_a_queue(database_url, pool, admin):
    paused = llmjobs("queues", "pause", "low", "--user", "root-admin")
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout) == {"queue": "low", "paused": True, "changed": True}
    listed = {
        q["queue_name"]: q
        for q in json.loads(llmjobs("queues", "list", "--user", "root-admin").stdout)
    }
    assert list(listed) == ["high", "default", "low", "maintenance"]
    assert listed["low"]["paused"] and listed["low"]["paused_by"] == "root-admin"
    assert not listed["high"]["paused"]
    resumed = json.loads(llmjobs("queues", "resume", "low", "--user", "root-admin").stdout)
    assert resumed == {"queue": "low", "paused": False, "changed": True}
    unknown = llmjobs("queues", "pause", "nope", "--user", "root-admin")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: queue: unknown queue 'nope'")
    llmjobs("users", "create", "cli-analyst")
    refused = llmjobs("queues", "pause", "low", "--user", "cli-analyst")
    assert refused.returncode == 1 and "admins only" in refused.stderr


def _in_process(*args: str) -> tuple[int, str, str]:
    """`llmjobs *args`: (exit code, stdout, stderr)."""
    done = llmjobs(*args)
    return done.returncode, done.stdout, done.stderr


def _limit_error(*args: str) -> str:
    """The error line of an `llmjobs limits` command that must be refused as invalid (exit 2)."""
    code, out, err = _in_process("limits", *args, "--user", "root-admin")
    assert code == 2, (args[:3], err)
    assert out == ""
    [line] = [line for line in err.splitlines() if line.startswith("error: ")]
    return line


def test_cli_sets_lists_and_clears_limits(database_url, pool, admin, analyst):
    from tasks import outputs
    from tasks.config import LLM_TASK

    made = llmjobs(
        "limits", "set", "openai/", "--rpm", "50", "--concurrent", "4", "--user", admin.name
    )
    assert made.returncode == 0, made.stderr
    limit = json.loads(made.stdout)
    assert limit.pop("updated_at")
    assert limit == {
        "pattern": "openai/",
        "rpm": 50,
        "tpm": None,
        "concurrent": 4,
        "source": "admin",
        "updated_by": "root-admin",
    }
    # Setting a limit again replaces all its caps.
    again = json.loads(
        llmjobs("limits", "set", "openai/", "--tpm", "30000", "--user", admin.name).stdout
    )
    assert (again["rpm"], again["tpm"], again["concurrent"]) == (None, 30000, None)

    # offline/echo under a limit of one request a minute: one starts, the others wait a minute.
    assert (
        llmjobs("limits", "set", " offline/ ", "--rpm", "1", "--user", admin.name).returncode == 0
    )
    ids = [
        outputs.submit(
            pool, user=analyst, template="Hi {{n}}", context={"n": n}, model="offline/echo"
        ).output_id
        for n in range(3)
    ]
    with pool.connection() as conn:
        worker = conn.execute("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
        taken = conn.execute(
            "SELECT (j.job).args->>'output_id' AS id"
            "  FROM llmjobs_fetch_jobs(NULL, %s, 3, %s) AS j",
            (worker.fetchone()["id"], LLM_TASK),
        ).fetchall()
        # what the worker does with the jobs it took
        conn.execute(
            "UPDATE llm_outputs SET status = 'processing' WHERE id = ANY(%s::bigint[])",
            ([int(r["id"]) for r in taken],),
        )
    assert [int(r["id"]) for r in taken] == ids[:1]

    listed = llmjobs("limits", "list", "--user", admin.name)
    assert listed.returncode == 0, listed.stderr
    overview = json.loads(listed.stdout)
    assert [(lim["pattern"], lim["rpm"], lim["tpm"]) for lim in overview["limits"]] == [
        ("offline/", 1, None),
        ("openai/", None, 30000),
    ]
    [use] = overview["models"]
    assert use.pop("tokens_last_minute") > 0
    assert use == {
        "model": "offline/echo",
        "pattern": "offline/",
        "requests_last_minute": 1,
        "in_flight": 1,
        "waiting": 2,
        "rate_limited_last_hour": 0,
        "paused_until": None,
        "waits_for": "rpm",
        "reason": "requests per minute",
    }

    cleared = llmjobs("limits", "clear", "openai/", "--user", admin.name)
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout) == {"pattern": "openai/", "cleared": True}
    missing = llmjobs("limits", "clear", "openai/", "--user", admin.name)
    assert missing.returncode == 1 and missing.stdout == ""
    assert "error: no limit on 'openai/'" in missing.stderr.splitlines()
    left = json.loads(llmjobs("limits", "list", "--user", admin.name).stdout)["limits"]
    assert [lim["pattern"] for lim in left] == ["offline/"]


def test_cli_refuses_bad_limits_naming_the_field_and_writes_nothing(
    database_url, pool, admin, analyst
):
    from tasks import limits

    cases = [
        (["openai/"], "rpm: give at least one of rpm, tpm and concurrent"),
        (["openai/", "--rpm", "0"], "rpm: rpm must be from 1 to 1,000,000"),
        (["openai/", "--tpm=-5"], "tpm: tpm must be from 1 to 1,000,000,000"),
        (["openai/", "--concurrent", "-1"], "concurrent: concurrent must be from 1 to 100,000"),
        (["openai/", "--concurrent", "1.5"], "concurrent: concurrent must be a whole number"),
        (["openai/", "--rpm", "ten"], "rpm: rpm must be a whole number"),
        (["openai/", "--rpm", "1e3"], "rpm: rpm must be a whole number"),
        (["openai/", "--rpm", ""], "rpm: rpm must be a whole number"),
        (["openai/", "--rpm", "99999999999999999999"], "rpm: rpm must be from 1 to 1,000,000"),
        (["openai/", "--tpm", "9" * 5000], "tpm: tpm must be from 1 to 1,000,000,000"),
        (["openai/", "--rpm", "5", "--tpm", "0"], "tpm: tpm must be from 1 to 1,000,000,000"),
        (["open ai/", "--rpm", "5"], "model: the model or prefix must be a model name"),
        (["openai/*", "--rpm", "5"], "model: the model or prefix must be a model name"),
        (["x" * 201, "--rpm", "5"], "model: the model or prefix must be a model name"),
        (["", "--rpm", "5"], "model: the model or prefix is empty"),
    ]
    for args, message in cases:
        line = _limit_error("set", *args)
        assert line.startswith(f"error: {message}"), (args[:3], line)
    assert _limit_error("clear", "open ai/").startswith("error: model: the model or prefix must")
    assert limits.list_limits(pool) == []

    code, _, err = _in_process("limits", "list", "--user", "nobody")
    assert code == 2 and "error: user: no user named 'nobody'" in err
    for args in (["list"], ["set", "openai/", "--rpm", "5"], ["clear", "openai/"]):
        code, out, err = _in_process("limits", *args, "--user", analyst.name)
        assert code == 1 and out == "", args
        assert "error: admins only" in err.splitlines(), args
    assert limits.list_limits(pool) == []
