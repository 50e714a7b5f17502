"""batchctl's shape: the registry's static table matches what each command module registers,
its import graph has no cycle and no `batchd`, and its exit codes and version are the ones
the README and batchd state."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from batchctl import registry
from batchshared import exitcodes

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "batchctl"


def _fresh(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# -- (a) the word -> module table ------------------------------------------------------------
def test_every_command_module_is_in_the_table():
    on_disk = {p.stem for p in (PACKAGE / "commands").glob("*.py") if p.stem != "__init__"}
    assert on_disk == set(registry.MODULES.values())


@pytest.mark.parametrize("module", sorted(set(registry.MODULES.values())))
def test_a_module_registers_exactly_the_words_the_table_gives_it(module):
    out = _fresh("import json; from batchctl import registry; "
                 f"import batchctl.commands.{module}; "
                 "print(json.dumps(sorted({c.head for c in registry.COMMANDS})))")
    words = sorted(word for word, name in registry.MODULES.items() if name == module)
    assert json.loads(out) == words


def test_load_imports_only_the_module_of_the_word():
    out = _fresh("import sys, json; from batchctl import registry; registry.load('queues'); "
                 "print(json.dumps(sorted(m for m in sys.modules "
                 "if m.startswith('batchctl.commands.'))))")
    assert json.loads(out) == ["batchctl.commands." + registry.MODULES["queues"]]


def test_help_lists_commands_in_table_order_whatever_was_imported_first():
    out = _fresh("from batchctl import cli, registry; registry.load('cancel'); "
                 "registry.load('daemon'); print(cli.build_parser().format_help())")
    section = out.split("\ncommands:\n", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"^    (\w+)", section, re.MULTILINE) == list(registry.MODULES)


def test_groups_are_described():
    registry.load()
    groups = {cmd.head for cmd in registry.COMMANDS if " " in cmd.name}
    assert groups == set(registry.GROUPS)


# -- (c) the import graph ---------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every module `path` imports anywhere (top level, inside functions, under
    TYPE_CHECKING), as dotted names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            # `from batchctl import render` imports the module batchctl.render
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the modules of `root`'s package it imports (a package's __init__ runs before
    any of its modules, so importing a.b.c is an edge to a and a.b as well)."""
    modules = {_module_name(p): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for target in _imports(path, name):
            parts = target.split(".")
            edges.update(m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1))
                         if m in modules and m != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_sees_a_cycle_through_a_package():
    assert find_cycle({"a": {"a.b"}, "a.b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"a.b"}, "a.b": {"c"}, "c": {"a"}}) == ["a", "a.b", "c", "a"]


def test_batchctl_imports_have_no_cycle():
    graph = import_graph(PACKAGE)
    assert {"batchctl.registry", "batchctl.client"} <= graph["batchctl.cli"]  # edges are seen
    assert find_cycle(graph) is None


def test_batchctl_never_imports_batchd():
    offenders = {name: sorted(t for t in _imports(path, name) if t.split(".")[0] == "batchd")
                 for path in PACKAGE.rglob("*.py") for name in [_module_name(path)]}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_nothing_but_the_entry_points_imports_cli():
    graph = import_graph(PACKAGE)
    importers = sorted(name for name, edges in graph.items() if "batchctl.cli" in edges)
    assert importers == ["batchctl.__main__"]


def test_command_modules_import_no_other_command_module():
    graph = import_graph(PACKAGE)
    for name, edges in graph.items():
        if name.startswith("batchctl.commands."):
            assert {e for e in edges if e.startswith("batchctl.commands.")} == set(), name


# -- exit codes and version: one definition, the docs agree -----------------------------------
def _readme_exit_codes(heading: str = "batchctl exit codes") -> list[tuple[int, str]]:
    text = (REPO / "README.md").read_text()
    table = text.split(heading, 1)[1].split("\n\n")[1]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", table, re.MULTILINE)
    return [(int(code), meaning) for code, meaning in rows]


def test_readme_daemon_exit_code_table_is_exitcodes():
    assert _readme_exit_codes("`batchd` exit codes") == list(exitcodes.DAEMON_MEANINGS)


def test_batchd_help_shows_the_daemon_exit_codes():
    proc = subprocess.run([sys.executable, "-m", "batchd", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200"))
    assert proc.returncode == 0, proc.stderr
    assert exitcodes.daemon_epilog() in proc.stdout


def test_readme_exit_code_table_is_exitcodes():
    assert _readme_exit_codes() == list(exitcodes.MEANINGS)
    words = " ".join((REPO / "README.md").read_text().split())
    assert f"Ctrl-C exits {exitcodes.EXIT_INTERRUPTED}," in words
    assert f"| head`) {exitcodes.EXIT_BROKEN_PIPE}, as the shell does" in words


def test_help_shows_the_exit_codes_table():
    from batchctl.cli import build_parser

    help_text = build_parser().format_help()
    assert exitcodes.epilog() in help_text
    assert [code for code, _ in exitcodes.MEANINGS] == list(range(9))


def test_error_maps_use_documented_codes():
    documented = {code for code, _ in exitcodes.MEANINGS}
    assert set(exitcodes.BY_API_CODE.values()) <= documented
    assert set(exitcodes.BY_HTTP_STATUS.values()) <= documented


def test_every_batchd_error_code_has_an_exit_code():
    from batchd import errors

    codes = {cls.code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.BatchdError)
             and cls is not errors.BatchdError}
    assert codes and codes <= set(exitcodes.BY_API_CODE)


def test_one_version_for_both_programs_and_the_package():
    import batchctl
    import batchd
    import batchshared

    assert batchctl.__version__ is batchd.__version__ is batchshared.__version__
    # pyproject takes it from there too, rather than repeating it
    text = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text
    assert 'version = { attr = "batchshared.__version__" }' in text
    assert not re.search(r'^version = "', text, re.MULTILINE)
