"""Settings: read from the environment once, each bad variable named with what it takes, by
every process at start (the CLI, procrastinate's worker, the dashboard, the API)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.config import (
    LIMITS_RULE,
    SettingsError,
    data_dir,
    get_settings,
    load_settings,
    secret_values,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RULE = "at most 200 characters, no spaces and no `*`"
PRICES = (
    "model=input/output prices in dollars per million tokens, separated by commas "
    "(e.g. openai/llama3=0.10/0.30,ollama/qwen=0/0)"
)
LIMITS = LIMITS_RULE + ", e.g. openai/gpt-4o=rpm:500,tpm:30000;anthropic/=rpm:50"
LIMITS_BAD = "bad entry 'openai/x=rpm:0'"


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
        ("LLMJOBS_SHUTDOWN_GRACE", "inf", "must be a number ≥ 0"),
        ("LLMJOBS_SHUTDOWN_GRACE", "1e400", "must be a number ≥ 0"),
        ("LLMJOBS_MODEL_TIMEOUT", "nan", "must be a number > 0"),
        ("LLMJOBS_RETRY_CAP", "-inf", "must be a number ≥ 0"),
        ("LLMJOBS_MODEL_PRICES", "foo", f"must be {PRICES}"),
        ("LLMJOBS_MODEL_PRICES", "openai/a=1/2,openai/b=three/4", f"must be {PRICES}"),
        ("LLMJOBS_MODEL_PRICES", "openai/a=1/inf", f"must be {PRICES}"),
        ("LLMJOBS_MODEL_PRICES", "openai/a=-1/2", f"must be {PRICES}"),
        ("LLMJOBS_MODEL_PRICES", "=1/2", f"must be {PRICES}"),
        ("LLMJOBS_MODEL_PRICES", "a b=1/2", f"must be {PRICES}"),
        (
            "LLMJOBS_MODELS",
            "openai/a, a b",
            f"must be model names separated by commas, each {RULE}",
        ),
        ("LLMJOBS_MODELS", "openai/*", f"must be model names separated by commas, each {RULE}"),
        ("LLMJOBS_DEFAULT_MODEL", "a b", f"must be a model name: {RULE}"),
        ("LLMJOBS_LIMIT_MINUTE", "0", "must be a number ≥ 1 and ≤ 3600"),
        ("LLMJOBS_REVIEW_HOLD_SECONDS", "5", "must be an integer ≥ 30 and ≤ 3600"),
        ("LLMJOBS_REVIEW_HOLD_SECONDS", "1.5", "must be an integer ≥ 30 and ≤ 3600"),
        (
            "LLMJOBS_MODEL_LIMITS",
            "openai/x=rpm:0",
            f"{LIMITS_BAD}: rpm must be from 1 to 1,000,000; must be {LIMITS}",
        ),
        ("LLMJOBS_MODEL_LIMITS", "a=b", f"bad entry 'a=b': {LIMITS_RULE}; must be {LIMITS}"),
        ("LLMJOBS_MODEL_LIMITS", "a=rpm:1;a=tpm:2", f"'a' is limited twice; must be {LIMITS}"),
        (
            "LLMJOBS_MODEL_LIMITS",
            "a=speed:3",
            "bad entry 'a=speed:3': unknown cap 'speed': use rpm, tpm or concurrent; "
            f"must be {LIMITS}",
        ),
        (
            "LLMJOBS_MODEL_LIMITS",
            "a b=rpm:1",
            f"bad entry 'a b=rpm:1': the model or prefix must be a model name: {RULE}; "
            f"must be {LIMITS}",
        ),
        ("LLMJOBS_MODEL_LIMITS", "a=rpm:1," + "x" * 300, None),
        ("LLMJOBS_DEFAULT_MODEL", "x" * 201, f"must be a model name: {RULE}"),
    ],
)
def test_a_bad_variable_is_named_with_what_it_takes(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    if message is None:  # a long value: the problem names the variable, the value is not shown
        assert caught.value.problems[0].startswith(f"{name}: bad entry")
        assert value not in caught.value.problems[0]
        return
    shown = f" (got {value!r})" if len(value) <= 80 else ""
    assert caught.value.problems == [f"{name}: {message}" + ("" if "got" in message else shown)]


def test_a_blank_default_model_is_refused(monkeypatch):
    monkeypatch.setenv("LLMJOBS_DEFAULT_MODEL", "   ")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert [p.split(" (got")[0] for p in caught.value.problems] == [
        f"LLMJOBS_DEFAULT_MODEL: must be a model name: {RULE}"
    ]


def test_model_prices_are_read_at_start(monkeypatch):
    monkeypatch.setenv("LLMJOBS_MODEL_PRICES", " openai/a=1/2, ,openai/b=0/0.5 ")
    assert load_settings().model_prices == (("openai/a", (1e-6, 2e-6)), ("openai/b", (0.0, 5e-7)))


@pytest.mark.parametrize(
    "url",
    ["notaurl", "postgresql://[::1", "postgresql://me:s3cret-pw@host/db?sslmode=nope=x y"],
)
def test_a_database_url_psycopg_cannot_read_is_refused_unshown(monkeypatch, url):
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.problems == [
        "DATABASE_URL: must be a PostgreSQL connection URL "
        "(postgresql://user:password@host:port/database) or key=value connection string"
    ]


@pytest.mark.parametrize(
    "url", ["postgresql://me:pw@127.0.0.1:9/db", "postgres://h/db", "host=h dbname=db"]
)
def test_a_database_url_psycopg_reads_is_kept(monkeypatch, url):
    monkeypatch.setenv("DATABASE_URL", url)
    assert load_settings().database_url == url


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


def test_settings_are_read_once_per_process():
    get_settings.cache_clear()
    first = get_settings()
    with pytest.MonkeyPatch.context() as plain:  # pytest's own: it does not clear the settings
        plain.setenv("LLMJOBS_WORKER_CONCURRENCY", "3")
        assert get_settings() is first
        get_settings.cache_clear()
        assert get_settings().worker_concurrency == 3
    get_settings.cache_clear()


def test_a_test_that_changes_the_environment_changes_the_settings(monkeypatch):
    # tests/conftest.py's monkeypatch: the settings are read again after each change
    monkeypatch.setenv("LLMJOBS_WORKER_CONCURRENCY", "4")
    assert get_settings().worker_concurrency == 4
    monkeypatch.delenv("LLMJOBS_WORKER_CONCURRENCY")
    assert get_settings().worker_concurrency == 10


@pytest.mark.parametrize("name", ["OPENAI_API_BASE", "OPENAI_BASE_URL"])
def test_the_openai_compatible_server_is_a_url(monkeypatch, name):
    monkeypatch.setenv(name, "http://127.0.0.1:9/v1")
    assert load_settings().openai_api_base == "http://127.0.0.1:9/v1"
    monkeypatch.setenv(name, "localhost:9")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.problems == [
        f"{name}: must be a URL starting with http:// or https:// (got 'localhost:9')"
    ]


def test_secrets_are_never_shown(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key-0123456789")
    settings = load_settings()
    assert settings.openai_api_key.get_secret_value() == "sk-test-secret-key-0123456789"
    assert "sk-test" not in repr(settings) and "sk-test" not in str(settings.model_dump())
    assert "sk-test-secret-key-0123456789" in secret_values()


def test_the_data_folder_is_a_setting(monkeypatch, tmp_path):
    assert load_settings().data_dir is None
    monkeypatch.setenv("LLMJOBS_DATA_DIR", str(tmp_path / "data"))
    assert load_settings().data_dir == tmp_path / "data"
    assert data_dir() == tmp_path / "data" and data_dir().is_dir()


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
    prices = _run(str(BIN / "llmjobs"), "models", LLMJOBS_MODEL_PRICES="foo")
    assert prices.returncode == 2
    assert prices.stderr.splitlines() == [
        f"error: LLMJOBS_MODEL_PRICES: must be {PRICES} (got 'foo')"
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


# --- the settings module is the only reader of the environment ------------------------------

CHECKED = ("tasks", "db", "api", "dashboard", "streamlit_app.py")
SETTINGS_MODULE = "tasks/config.py"
# Outside the settings module, only what a library reads from the environment when it is
# imported, set right before that import, in a function named here (db cannot import tasks).
ALLOWED = {("db/embedded.py", "_before_pgserver_import")}
_ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def _environment_uses(path: Path, root: Path) -> list[str]:
    """Each place in the module at path that reads or changes the environment (os.environ,
    os.getenv, ..., or those names imported from os), outside the allowed functions."""
    where = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    os_names = {"os"} | {
        alias.asname or alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.split(".")[0] == "os"
    }
    found: list[str] = []

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        what = None
        if (
            isinstance(node, ast.Attribute)
            and node.attr in _ENV_NAMES
            and isinstance(node.value, ast.Name)
            and node.value.id in os_names
        ):
            what = f"{node.value.id}.{node.attr}"
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            names = [a.name for a in node.names if a.name in _ENV_NAMES or a.name == "*"]
            what = f"from os import {', '.join(names)}" if names else None
        if what and (where, function) not in ALLOWED:
            found.append(f"{where}:{node.lineno} {what}")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return found


def environment_readers(root: Path = ROOT) -> list[str]:
    paths = []
    for name in CHECKED:
        target = root / name
        if target.is_dir():
            paths += sorted(target.rglob("*.py"))
        elif target.exists():
            paths.append(target)
    return [
        use
        for path in paths
        if path.relative_to(root).as_posix() != SETTINGS_MODULE
        for use in _environment_uses(path, root)
    ]


def test_only_the_settings_module_reads_the_environment():
    assert all((ROOT / name).exists() for name in CHECKED)
    assert environment_readers() == []


def test_the_check_sees_each_way_to_the_environment(tmp_path):
    (tmp_path / "dashboard").mkdir()
    (tmp_path / "db").mkdir()
    (tmp_path / "streamlit_app.py").write_text("import os\nos.environ.get('X')\n")
    (tmp_path / "dashboard" / "ui.py").write_text(
        "import os as system\nfrom os import getenv as ge, path\n\n\n"
        "def f():\n    return system.environ['X'], ge('Y'), system.getenv('Z')\n"
    )
    (tmp_path / "db" / "embedded.py").write_text(
        "import os\n\n\ndef _before_pgserver_import():\n    os.environ.setdefault('A', 'b')\n"
        "\n\ndef data_dir():\n    return os.environ['LLMJOBS_DATA_DIR']\n"
    )
    assert environment_readers(tmp_path) == [
        "db/embedded.py:9 os.environ",
        "dashboard/ui.py:2 from os import getenv",
        "dashboard/ui.py:6 system.environ",
        "dashboard/ui.py:6 system.getenv",
        "streamlit_app.py:2 os.environ",
    ]


def test_model_limits_are_read_as_written(monkeypatch):
    monkeypatch.setenv(
        "LLMJOBS_MODEL_LIMITS",
        " openai/gpt-4o = rpm:500, TPM:30000 ,concurrent:20 ; anthropic/=rpm:50;",
    )
    limits = load_settings().model_limits
    assert [tuple(limit) for limit in limits] == [
        ("openai/gpt-4o", 500, 30000, 20),
        ("anthropic/", 50, None, None),
    ]
