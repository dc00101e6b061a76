"""Settings: read from the environment once, each bad variable named with what it takes, by
every process at start (the CLI, procrastinate's worker, the dashboard, the API)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasks.config import SettingsError, get_settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LLMJOBS_WORKER_CONCURRENCY", "abc", "must be an integer ≥ 1 (got 'abc')"),
        ("LLMJOBS_WORKER_CONCURRENCY", "0", "must be an integer ≥ 1 (got '0')"),
        ("LLMJOBS_API_PORT", "70000", "must be an integer ≥ 1 and ≤ 65535"),
        ("LLMJOBS_OPENAI_COMPATIBLE_CLIENT", "grpc", "must be one of http, sdk"),
        ("LLMJOBS_LOG_LEVEL", "LOUD", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("LLMJOBS_CACHE", "maybe", "must be true or false"),
        ("LLMJOBS_POLL_INTERVAL", "0", "must be a number > 0"),
        ("LLMJOBS_RETRY_SCALE", "-1", "must be a number ≥ 0"),
        ("LLMJOBS_API_RATE_LIMIT", "sixty", "must be an integer ≥ 0"),
        ("LLMJOBS_MAX_RESPONSE_CHARS", "10", "must be an integer ≥ 1000"),
    ],
)
def test_a_bad_variable_is_named_with_what_it_takes(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.problems == [
        f"{name}: {message}" + ("" if "got" in message else f" (got {value!r})")
    ]


def test_every_bad_variable_is_reported_at_once(monkeypatch):
    monkeypatch.setenv("LLMJOBS_WORKER_CONCURRENCY", "many")
    monkeypatch.setenv("LLMJOBS_CACHE_WINDOW", "soon")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert sorted(p.split(":")[0] for p in caught.value.problems) == [
        "LLMJOBS_CACHE_WINDOW",
        "LLMJOBS_WORKER_CONCURRENCY",
    ]


def test_values_are_read_as_people_write_them(monkeypatch):
    monkeypatch.setenv("LLMJOBS_MODELS", " openai/a, ,anthropic/b ")
    monkeypatch.setenv("LLMJOBS_LOG_LEVEL", " debug ")
    monkeypatch.setenv("LLMJOBS_CACHE", "yes")
    monkeypatch.setenv("LLMJOBS_OPENAI_COMPATIBLE_CLIENT", "SDK")
    monkeypatch.setenv("LLMJOBS_WORKER_CONCURRENCY", "")  # empty: the default
    settings = load_settings()
    assert settings.extra_models == ("openai/a", "anthropic/b")
    assert (settings.log_level, settings.cache, settings.openai_compatible_client) == (
        "DEBUG",
        True,
        "sdk",
    )
    assert settings.worker_concurrency == 10


def test_settings_are_read_once_per_process(monkeypatch):
    get_settings.cache_clear()
    first = get_settings()
    monkeypatch.setenv("LLMJOBS_WORKER_CONCURRENCY", "3")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().worker_concurrency == 3
    get_settings.cache_clear()


def _run(*command: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def test_the_cli_and_the_worker_stop_with_one_line_per_bad_variable():
    bad = {"LLMJOBS_WORKER_CONCURRENCY": "abc", "LLMJOBS_CACHE": "maybe"}
    cli = _run(str(BIN / "llmjobs"), "models", **bad)
    assert cli.returncode == 2
    assert cli.stderr.splitlines() == [
        "error: LLMJOBS_WORKER_CONCURRENCY: must be an integer ≥ 1 (got 'abc')",
        "error: LLMJOBS_CACHE: must be true or false (got 'maybe')",
    ]
    worker = _run(str(BIN / "procrastinate"), "--app=tasks.app", "worker", **bad)
    assert worker.returncode == 2
    assert "error: LLMJOBS_WORKER_CONCURRENCY: must be an integer ≥ 1 (got 'abc')" in (
        worker.stderr.splitlines()
    )


def test_the_dashboard_says_which_settings_to_fix(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LLMJOBS_DASHBOARD_PORT", "port")
    get_settings.cache_clear()
    try:
        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=30).run()
    finally:
        get_settings.cache_clear()
    assert not at.exception
    assert "LLMJOBS_DASHBOARD_PORT: must be an integer ≥ 1 and ≤ 65535 (got 'port')" in (
        at.error[0].value
    )
