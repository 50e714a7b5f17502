"""The rules of docs/design.md that import-linter cannot see: only batchd/store/ holds SQL,
every module stays small enough to read in one sitting, and the design's module table names
every module that exists (and none that does not)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "batchd"
STORE = PACKAGE / "store"
MODULES = sorted(p for pkg in (PACKAGE, REPO / "batchshared") for p in pkg.rglob("*.py")
                 if "__pycache__" not in p.parts)
MAX_LINES = 400

# SQL as it is written in this code base: upper-case keywords at the start of a statement.
SQL = re.compile(r"^\s*(SELECT\s.*\bFROM\b|INSERT\s+(OR\s+\w+\s+)?INTO\b|UPDATE\s+\w+\s+SET\b|"
                 r"DELETE\s+FROM\b|CREATE\s+(TABLE|INDEX|TRIGGER|VIEW)\b|BEGIN\s+IMMEDIATE\b|"
                 r"PRAGMA\s+\w+)", re.DOTALL)


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def sql_outside_store(path: Path) -> list[str]:
    """Where `path` (not in batchd/store/) imports sqlite3 or carries an SQL statement."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                else [node.module or ""]
            if any(n.split(".")[0] in ("sqlite3", "aiosqlite") for n in names):
                found.append(f"line {node.lineno}: imports {', '.join(names)}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and SQL.match(node.value):
            found.append(f"line {node.lineno}: SQL {node.value.strip()[:40]!r}")
    return found


@pytest.mark.parametrize("path", [p for p in MODULES if STORE not in p.parents], ids=_rel)
def test_only_the_store_runs_sql(path):
    assert sql_outside_store(path) == []


def test_the_sql_check_finds_what_it_looks_for(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('import sqlite3\nQ = """\n    SELECT id FROM jobs WHERE state = ?"""\n'
                     'U = "UPDATE jobs SET state = ?"\nmsg = "Select a file from the list"\n')
    assert [f.split(":")[0] for f in sql_outside_store(probe)] == ["line 1", "line 2", "line 4"]


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_modules_stay_small(path):
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{_rel(path)} has {lines} lines: split it by concern"


def _design_paths() -> set[str]:
    text = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    return set(re.findall(r"`((?:batchd|batchshared)/[\w/]+\.py)`", text))


def test_the_design_names_every_module():
    on_disk = {_rel(p) for p in MODULES if p.name != "__init__.py"} | {
        "batchd/__init__.py", "batchd/store/__init__.py", "batchshared/__init__.py"}
    named = _design_paths()
    assert sorted(on_disk - named - {"batchd/__init__.py", "batchd/__main__.py"}) == []
    assert "batchshared/__init__.py" in named
    assert sorted(named - on_disk) == []
