"""The shape of the code that a reader relies on (README, Layout): main.py an outline, short functions, no
import cycle, utils/ a leaf, the engine never reaching into main.py, the data path in stages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("datasets", "engine", "losses", "models", "utils", "recipes")
MAX_FUNCTION_LINES = 60
# Argument parsers: one add_argument call per flag, long by nature.
PARSERS = {("opts.py", "build_parser"), ("datasets/sources/convert.py", "build_parser")}


def sources() -> list[Path]:
    skip = {".venv", "runs", "data", "fixtures", ".git"}
    return sorted(p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """The project modules `path` imports anywhere in it (a function's import counts too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {m for m in out if m.split(".")[0] in (*PACKAGES, "main", "opts")}


def test_main_is_an_outline_under_200_lines():
    assert len((ROOT / "main.py").read_text().splitlines()) < 200


def test_no_function_over_60_lines_outside_argument_parsers():
    long = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and (path.relative_to(ROOT).as_posix(), node.name) not in PARSERS:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these: " + "; ".join(long)


def test_no_import_cycle_among_the_project_modules():
    paths = {module_name(p): p for p in sources() if module_name(p).split(".")[0] in (*PACKAGES, "main", "opts")}
    graph = {m: {i for i in imported_modules(p) if i in paths and i != m} for m, p in paths.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(n) :], n]))
            if n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_utils_is_a_leaf_and_nothing_reaches_into_main():
    for path in sources():
        name, mods = module_name(path), imported_modules(path)
        if name.startswith("utils"):
            assert not {m for m in mods if not m.startswith("utils")}, f"{name} imports {mods}"
        if name.startswith(("engine", "datasets", "models", "losses", "utils")):
            assert "main" not in mods and "opts" not in mods, f"{name} imports the CLI"
        # Elsewhere (scripts, tests, predict.py) main.py is the command: its main() and nothing else.
        tree = ast.parse(path.read_text())
        aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                   if a.name == "main"}  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "main":
                assert [a.name for a in node.names] == ["main"], f"{path.name} imports {node.names[0].name} of main"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                assert node.attr == "main", f"{path.relative_to(ROOT)}:{node.lineno} reaches into main: {node.attr}"


@pytest.mark.parametrize("stage", ["sources", "store", "pipeline", "batch"])
def test_each_stage_of_the_data_path_says_what_runs_there(stage):
    doc = ast.get_docstring(ast.parse((ROOT / "datasets" / stage / "__init__.py").read_text()))
    assert doc and len(doc) > 60
