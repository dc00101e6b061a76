"""Imports run one way: `dashboard` and `api` -> `tasks` -> `db`, never back (and the two front
ends never import each other). Read from the source, function-level imports included."""

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
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
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
    assert wrong_way("db", tmp_path) == ["db/probe.py:5 imports tasks"]
