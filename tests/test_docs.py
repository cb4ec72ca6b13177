"""README.md and docs/*.md as tested contracts: every example runs as written (issue 20.7).

Each page runs in a fresh project folder outside the repository (``examples/`` and ``rubrics/``
beside it, ``../shared`` the public data), its blocks in page order, so a later example sees what
an earlier one wrote, as a reader's shell would. Commands run in-process through typer's
CliRunner and Python examples through ``exec``, with the session's engine lent to every judge
they build: the docs start no engine of their own. How a page marks what cannot run here (a GPU,
a server, a long calibration) is in tests/docs_examples.py; ``test_skipped_examples_say_why``
lists them.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
from docs_examples import PYTHON, REPO, Block, argv, blocks, commands, doc_files
from scripted import forbid_engines, lend
from typer.testing import CliRunner

from judgekit import GateFailure, cli
from judgekit.backends import factory

# the public data sets, as tests/conftest.py finds them; pages reach them as ../shared/data
DATA = Path(os.environ.get("JUDGEKIT_DATA_DIR") or REPO.parent / "shared" / "data")
runner = CliRunner()

# commands and Python calls that build a judge; a page with none runs without the engine (a
# judge started there anyway fails the test: add what it used here)
JUDGING = re.compile(
    r"^(judge|cascade|canaries)\b|^calibrate\b(?!.*--verdicts)|^drift\b.*--(pin|anchors)"
    r"|^rank\b.*--input|--probe\b"
)
JUDGING_PYTHON = re.compile(r"create_backend|\bjudge\(|judge_backend")


def _needs_engine(page: Path) -> bool:
    for block in blocks(page):
        if block.skip or block.file:
            continue
        if block.lang in PYTHON:
            if JUDGING_PYTHON.search(block.code):
                return True
        elif any(JUDGING.search(line.removeprefix("judgekit ")) for line in _all_commands(block)):
            return True
    return False


def _all_commands(block: Block) -> list[str]:
    return [*block.setup, *commands(block)]


def _pages() -> list[Any]:
    return [
        pytest.param(page, id=str(page.relative_to(REPO)), marks=[pytest.mark.engine])
        if _needs_engine(page)
        else pytest.param(page, id=str(page.relative_to(REPO)))
        for page in doc_files()
    ]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A reader's folder outside the repository: the sample files, the rubrics, ``../shared``."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copytree(REPO / "examples", folder / "examples")
    shutil.copytree(REPO / "rubrics", folder / "rubrics")  # `rubrics new` writes into ./rubrics
    if DATA.is_dir():
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared" / "data").symlink_to(DATA.resolve(), target_is_directory=True)
        monkeypatch.setenv("JUDGEKIT_DATA_DIR", str(DATA.resolve()))
    monkeypatch.setenv("JUDGEKIT_CARDS_DIR", str(tmp_path / "cards"))
    monkeypatch.setenv("JUDGEKIT_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.parametrize("page", _pages())
def test_examples_run(
    page: Path, project: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Every unmarked example of ``page`` runs as written and exits as the page says."""
    if not DATA.is_dir() and re.search(r"\.\./shared|--set (pandalm|summeval)", page.read_text()):
        pytest.skip(f"public data sets not found at {DATA} (see ../shared/README.md)")
    context: dict[str, Any] = {}
    if request.node.get_closest_marker("engine"):
        context["judge_backend"] = request.getfixturevalue("engine")
    replay = factory.BUILDERS["replay"]
    forbid_engines(monkeypatch)
    monkeypatch.setitem(factory.BUILDERS, "replay", replay)  # replayed verdicts start nothing
    if context:
        lend(monkeypatch, context["judge_backend"])
    failures: list[str] = []
    for block in blocks(page):
        if block.skip:
            continue
        for command in block.setup:
            failures += _run_command(block, command, project, expected=(0,))
        if block.file:
            target = project / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
        elif block.lang in PYTHON:
            failures += _run_python(block, context, gate_may_fail=1 in block.exit)
        else:
            for command in commands(block):
                failures += _run_command(block, command, project, expected=block.exit)
    assert not failures, "\n\n".join(failures)


def _run_command(block: Block, command: str, cwd: Path, *, expected: tuple[int, ...]) -> list[str]:
    """One command of ``block``; a failure as a message naming the page, line and output."""
    if command.startswith("cp "):
        source, target = command.split()[1:]
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cwd / source, cwd / target)
        return []
    if not command.startswith("judgekit "):
        return [f"{block.where}: not a judgekit command (mark the block): {command}"]
    start = time.perf_counter()
    result = runner.invoke(cli.app, argv(command, cwd))
    print(f"{time.perf_counter() - start:7.1f} s  {block.where}  {command[:120]}")
    if result.exit_code in expected:
        return []
    trace = (
        "".join(traceback.format_exception(result.exception))
        if result.exception and not isinstance(result.exception, SystemExit)
        else ""
    )
    return [
        f"{block.where}: `{command}` exited {result.exit_code}, not {expected}:\n"
        f"{result.output[-3000:]}{trace[-3000:]}"
    ]


def _run_python(block: Block, context: dict[str, Any], *, gate_may_fail: bool) -> list[str]:
    """``block`` run as a module; ``test_*`` functions it defines are called with the fixtures
    they name (``judge_backend``: the session's engine)."""
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    try:
        exec(compile(block.code, block.where, "exec"), namespace)
        for name, function in list(namespace.items()):
            if name.startswith("test_") and callable(function):
                names = function.__code__.co_varnames[: function.__code__.co_argcount]
                function(**{arg: context[arg] for arg in names})
    except GateFailure:
        if not gate_may_fail:
            return [f"{block.where}: a gate failed:\n{traceback.format_exc()[-3000:]}"]
    except Exception:
        return [f"{block.where}: the Python example failed:\n{traceback.format_exc()[-3000:]}"]
    return []


def test_skipped_examples_say_why() -> None:
    """Each example that does not run here says why (``pytest -s`` prints the list)."""
    skipped = [
        (block.where, block.skip) for page in doc_files() for block in blocks(page) if block.skip
    ]
    for where, reason in skipped:
        assert len(reason.split()) >= 3, f"{where}: say why the example cannot run ({reason!r})"
    print("\n".join(f"skipped {where}: {reason}" for where, reason in skipped))


def test_shell_blocks_hold_only_judgekit_commands() -> None:
    """Unmarked shell blocks run ``judgekit`` commands only (anything else must say why not)."""
    strays = [
        f"{block.where}: {command}"
        for page in doc_files()
        for block in blocks(page)
        if not block.skip and not block.file and block.lang not in PYTHON
        for command in _all_commands(block)
        if not command.startswith(("judgekit ", "cp "))
    ]
    assert not strays, "\n".join(strays)


def test_the_parser_reads_marks_continuations_and_globs(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n<!-- docs-test: skip needs a GPU here -->\n\n```bash\njudgekit judge x\n```\n"
        "<!-- docs-test: setup cp a b -->\n<!-- docs-test: exit 0 1 -->\n```bash\n"
        "judgekit judge --rubric r \\\n    -i 'a b.jsonl'  # a comment\n"
        "bash scripts/setup.sh && .venv/bin/judgekit view runs/*.jsonl\n```\n"
        "<!-- docs-test: file data.csv -->\n```\nid,x\n```\n```yaml\nnot: run\n```\n"
    )
    (tmp_path / "runs").mkdir()
    for name in ("b.jsonl", "a.jsonl", "a.items.jsonl"):
        (tmp_path / "runs" / name).touch()
    first, second, third = blocks(page)
    assert (first.skip, first.line) == ("needs a GPU here", 5)
    assert (second.setup, second.exit, second.skip) == (("cp a b",), (0, 1), None)
    assert commands(second) == [
        "judgekit judge --rubric r -i 'a b.jsonl'",
        "judgekit view runs/*.jsonl",
    ]
    assert argv(commands(second)[0], tmp_path) == ["judge", "--rubric", "r", "-i", "a b.jsonl"]
    # the shell's glob takes the sidecars too; `drift --runs` must tell them apart itself
    assert argv(commands(second)[1], tmp_path) == [
        "view",
        "runs/a.items.jsonl",
        "runs/a.jsonl",
        "runs/b.jsonl",
    ]
    assert (third.file, third.code) == ("data.csv", "id,x\n")


def test_every_python_example_compiles_and_its_imports_resolve() -> None:
    """Skipped Python examples too: valid syntax, ``from judgekit... import`` lines that import,
    and every ``judgekit.NAME`` they call exported by the package."""
    import ast

    import judgekit

    problems = []
    for page in doc_files():
        for block in blocks(page):
            if block.lang not in PYTHON:
                continue
            tree = ast.parse(block.code, block.where)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("judgekit"):
                    try:
                        exec(compile(ast.Module([node], []), block.where, "exec"), {})
                    except ImportError as err:
                        problems.append(f"{block.where}: {err}")
                elif (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "judgekit"
                    and not hasattr(judgekit, node.attr)
                ):
                    problems.append(f"{block.where}: judgekit.{node.attr} is not exported")
    assert not problems, "\n".join(problems)
