"""Imports run one way: `dashboard` and `api` -> `tasks` -> `db`, never back (and the two front
ends never import each other); inside `tasks`, the command line and the worker -> the use-cases ->
the LLM gateway -> settings, logs and errors. Read from the source, function-level imports
included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# what each package may not import
FORBIDDEN = {
    "db": {"tasks", "dashboard", "api"},
    "tasks": {"dashboard", "api"},
    "dashboard": {"api"},
    "api": {"dashboard"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for each import; `from a import b` gives a.b as well as a, as b may be a
    module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def wrong_way(package: str, root: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)}:{line} imports {module}"
        for path in sorted((root / package).rglob("*.py"))
        for line, module in _imports(path)
        if module.split(".")[0] in FORBIDDEN[package]
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_one_way(package):
    assert wrong_way(package) == []


def test_the_check_sees_an_import_the_wrong_way(tmp_path):
    # a module of db importing tasks inside a function is caught, with its file and line
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "probe.py").write_text(
        "import psycopg\n\n\ndef f():\n    from tasks import submit\n    return submit\n"
    )
    assert wrong_way("db", tmp_path) == [
        "db/probe.py:5 imports tasks",
        "db/probe.py:5 imports tasks.submit",
    ]


# The layers inside tasks, innermost first; a module may import its own layer and those before it.
# `tasks.testing` (the pytest plugin) may import any layer but the command line.
TASK_LAYERS = ("base", "llm", "use-cases", "worker", "cli")
BASE = {"tasks.config", "tasks.logs", "tasks.errors"}


def task_layer(module: str) -> str | None:
    """The layer of a module of tasks, None for one outside it (or tasks itself)."""
    parts = module.split(".")
    if parts[0] != "tasks" or len(parts) == 1:
        return None
    if ".".join(parts[:2]) in BASE:
        return "base"
    if parts[1] in ("llm", "worker", "cli", "testing"):
        return parts[1]
    return "use-cases"


def layer_breaches(root: Path = ROOT) -> list[str]:
    breaches = []
    for path in sorted((root / "tasks").rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        mine = task_layer(module)
        if mine is None:
            continue
        for line, imported in _imports(path):
            theirs = task_layer(imported)
            if theirs is None or theirs == mine:
                continue
            if mine == "testing":
                allowed = theirs != "cli"
            else:
                allowed = theirs != "testing" and (
                    TASK_LAYERS.index(theirs) < TASK_LAYERS.index(mine)
                )
            if not allowed:
                breaches.append(f"{path.relative_to(root)}:{line} ({mine}) imports {imported}")
    return breaches


def test_the_layers_of_tasks_import_inwards():
    assert layer_breaches() == []


@pytest.mark.parametrize(
    ("where", "source", "breach"),
    [
        ("tasks/llm/probe.py", "from tasks import outputs\n", "(llm) imports tasks.outputs"),
        ("tasks/probe.py", "from tasks.worker import app\n", "(use-cases) imports tasks.worker"),
        ("tasks/config.py", "import tasks.llm.calls\n", "(base) imports tasks.llm.calls"),
        (
            "tasks/worker/probe.py",
            "from tasks.cli.main import main\n",
            "(worker) imports tasks.cli",
        ),
    ],
)
def test_the_layer_check_sees_an_import_outwards(tmp_path, where, source, breach):
    target = tmp_path / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source)
    found = layer_breaches(tmp_path)
    assert len(found) >= 1 and breach in found[0]
