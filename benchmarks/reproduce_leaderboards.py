"""Reproduce AlpacaEval 2 and Arena-Hard-Auto numbers from their released data with judgekit.rank.

    git clone https://github.com/tatsu-lab/alpaca_eval        /data/alpaca_eval
    git clone https://github.com/lmarena/arena-hard-auto      /data/arena-hard-auto
    python benchmarks/reproduce_leaderboards.py --alpaca-eval /data/alpaca_eval \\
        --arena-hard /data/arena-hard-auto

Each repository is read at a pinned commit with ``git show`` (a clone or a bare mirror both
work); nothing is copied into this repository. Arena-Hard's own ``utils_math.py`` (at commit
d99b139, needs scikit-learn and tqdm) is loaded from the clone and run beside judgekit; its
``utils/math_utils.py`` (v2, needs torch) likewise. Results: ``benchmarks/results/
reproduce_leaderboards.{json,md}``; docs/leaderboards.md explains them.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from types import ModuleType

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce_alpaca_eval import alpaca_eval
from reproduce_arena_hard import arena_hard_bradley_terry, arena_hard_style

RESULTS = Path(__file__).resolve().parent / "results"
ALPACA_COMMIT = "cd543a149df89434d8a54582c0151c0b945c3d20"
ARENA_BATTLES_COMMIT = "57a9881c845ff88a6eae4c0bdc9a12d44bd4e4a7"
ARENA_CODE_COMMIT = "d99b1392d05d2bf100a50a27600132fa9c2c0daf"
ARENA_V2_COMMIT = "196f6b826783b3da7310e361a805fa36f0be83f3"
ARENA_ANSWERS_COMMIT = "900183d"
BATTLES = "data/arena_hard_battles.jsonl"
ANSWERS = "data/arena-hard-v0.1/model_answer/{}.jsonl"


def git_show(repo: Path, commit: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"], check=True, capture_output=True
    ).stdout


def git_files(repo: Path, commit: str, under: str) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", commit, under],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.split()


def load_module(repo: Path, commit: str, path: str, name: str) -> ModuleType:
    """The publisher's module at ``commit``, imported from a temporary file (never saved here)."""
    folder = Path(tempfile.mkdtemp(prefix="publisher-"))
    target = folder / f"{name}.py"
    target.write_bytes(git_show(repo, commit, path))
    spec = importlib.util.spec_from_file_location(name, target)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpaca-eval", type=Path, help="clone of tatsu-lab/alpaca_eval")
    parser.add_argument("--arena-hard", type=Path, help="clone of lmarena/arena-hard-auto")
    parser.add_argument("--rounds", type=int, default=100, help="Arena-Hard bootstrap rounds")
    args = parser.parse_args()
    results: dict[str, object] = {}
    lines: list[str] = []
    if args.alpaca_eval:
        out, text = alpaca_eval(args.alpaca_eval, ALPACA_COMMIT, git_show, git_files)
        results["alpaca_eval"] = out
        lines += text
    if args.arena_hard:
        publisher = load_module(args.arena_hard, ARENA_CODE_COMMIT, "utils_math.py", "utils_math")
        battles = pd.read_json(
            io.BytesIO(git_show(args.arena_hard, ARENA_BATTLES_COMMIT, BATTLES)), lines=True
        )
        out, text = arena_hard_bradley_terry(battles, publisher, args.rounds)
        results["arena_hard_bt"] = out
        lines += text
        v2 = load_module(args.arena_hard, ARENA_V2_COMMIT, "utils/math_utils.py", "math_utils")
        answers = {
            model: pd.read_json(
                io.BytesIO(git_show(args.arena_hard, ARENA_ANSWERS_COMMIT, ANSWERS.format(model))),
                lines=True,
            )
            for model in ("gpt-4-0314", "gpt-4-0613", "gpt-3.5-turbo-0125")
        }
        out, text = arena_hard_style(answers, publisher, v2, args.rounds)
        results["arena_hard_style"] = out
        lines += text
    if not results:
        parser.error("pass --alpaca-eval and/or --arena-hard")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reproduce_leaderboards.json").write_text(
        json.dumps(results, indent=2, default=float) + "\n"
    )
    (RESULTS / "reproduce_leaderboards.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
