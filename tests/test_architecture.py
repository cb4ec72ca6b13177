"""The layout stays readable: packages import only downstream of the data flow, no import cycles
(imports inside functions and under TYPE_CHECKING included), no module past ~400 lines without a
reason in its docstring and none past 600, no function past 80 lines (see docs/architecture.md)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "judgekit"
MAX_LINES = 400
HARD_MAX_LINES = 600
MAX_FUNCTION_LINES = 80
# package -> the judgekit packages it may import (module-level); docs/architecture.md explains why.
ALLOWED = {
    "schema": set(),
    "files": set(),
    "_version": set(),
    "stats": set(),
    "rubrics": {"files", "schema"},
    "data": {"files", "rubrics", "schema"},
    "backends": {"files", "rubrics", "schema"},
    "bias": {"schema", "stats"},
    "cards": {"bias", "files", "rubrics", "schema", "stats"},
    "config": {"backends", "cards", "schema"},
    "judging": {
        "_version",
        "backends",
        "bias",
        "cards",
        "data",
        "files",
        "rubrics",
        "schema",
        "stats",
    },
    "calibrate": {
        "_version",
        "backends",
        "bias",
        "cards",
        "config",
        "data",
        "files",
        "judging",
        "rubrics",
        "schema",
        "stats",
        "view",
    },
    "view": {"bias", "data", "judging", "rubrics", "schema", "stats"},
    "audit": {
        "backends",
        "calibrate",
        "cards",
        "ci",
        "data",
        "files",
        "judging",
        "rubrics",
        "schema",
        "stats",
    },
    "ci": {"backends", "cards", "config", "data", "judging", "rubrics", "schema", "stats"},
    "rank": {"backends", "cards", "data", "files", "judging", "rubrics", "schema", "stats"},
    "cli": {
        "audit",
        "backends",
        "bias",
        "calibrate",
        "cards",
        "ci",
        "config",
        "data",
        "judging",
        "rank",
        "rubrics",
        "files",
        "schema",
        "view",
    },
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> judgekit modules it imports anywhere: module level, inside functions, under
    TYPE_CHECKING (a lazy import is still a dependency)."""
    graph: dict[str, set[str]] = defaultdict(set)
    modules = {_module(path) for path in PACKAGE.rglob("*.py")}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("judgekit"):
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{node.module}.{alias.name}"
                    graph[_module(path)].add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names}
                graph[_module(path)] |= {n for n in names if n.startswith("judgekit")}
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def test_packages_import_only_downstream_of_the_flow() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in _imports().items()
        for target in targets
        if _package(module) != "(root)"
        and _package(target) != _package(module)
        and _package(target) not in ALLOWED[_package(module)]
    )
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = _imports()
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_modules_stay_small_or_say_why() -> None:
    long = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        n = text.count("\n")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if n > HARD_MAX_LINES or (n > MAX_LINES and "lines:" not in docstring):
            long.append(f"{path.relative_to(PACKAGE)} ({n} lines)")
    assert long == []


def test_functions_stay_short() -> None:
    """Bodies (after the docstring) of at most 80 lines: a CLI command's option declarations
    are its signature, not logic, so they do not count."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = (
                    node.body[1:] if ast.get_docstring(node) and len(node.body) > 1 else node.body
                )
                n = (node.end_lineno or node.lineno) - body[0].lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({n} lines)")
    assert long == []


#: Optional heavy dependencies -> the one module that may import each (lazily, where it is used).
OPTIONAL_IMPORTS = {
    "vllm": "judgekit/backends/vllm_engine.py",
    "ray": "judgekit/judging/ray_executor.py",
}


def test_optional_engines_are_imported_in_one_module_each() -> None:
    """vLLM only in the engine backend, Ray only in the Ray executor: judgekit imports and runs
    without either (a user without the [ray] extra never loads Ray)."""
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        where = str(path.relative_to(PACKAGE.parent))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in OPTIONAL_IMPORTS and OPTIONAL_IMPORTS[top] != where:
                    wrong.append(f"{where} imports {name}")
    assert wrong == []
