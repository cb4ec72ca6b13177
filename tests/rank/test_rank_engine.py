"""`judgekit rank --input` end to end on the engine: 4 models x 20 questions from PandaLM.

PandaLM compares five 7B models on 170 instructions; the answers of four of them to the same 20
instructions make a small tournament. The embedded judge is weak: the test checks the
machinery (every battle judged in both orders, every output written, the trust line), never
which model wins.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from scripted import lend
from typer.testing import CliRunner

from judgekit import cli

MODELS = ("bloom-7b", "llama-7b", "opt-7b", "pythia-6.9b")


def _answers(shared_data: Path, path: Path, n_questions: int = 20) -> None:
    rows = json.loads((shared_data / "pandalm" / "testset-v1.json").read_text())
    by_question: dict[str, dict[str, str]] = defaultdict(dict)
    text: dict[str, str] = {}
    for row in rows:
        question = row["instruction"] + ("\n\n" + row["input"] if row["input"] else "")
        key = str(abs(hash(question)) % 10**8)
        text[key] = question
        first, second = row["cmp_key"].split("_")
        by_question[key][first] = row["response1"]
        by_question[key][second] = row["response2"]
    chosen = [q for q in sorted(by_question) if all(m in by_question[q] for m in MODELS)]
    lines = [
        {"question_id": q, "question": text[q], "model": m, "answer": by_question[q][m]}
        for q in chosen[:n_questions]
        for m in MODELS
    ]
    assert len(lines) == n_questions * len(MODELS)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_rank_judges_every_battle_and_writes_every_output(
    engine: object, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lend(monkeypatch, engine)
    answers = tmp_path / "answers.jsonl"
    _answers(shared_data, answers)
    out = {k: tmp_path / f"board.{k}" for k in ("json", "md", "html")}
    result = CliRunner().invoke(
        cli.app,
        [
            "rank", "--input", str(answers), "--rubric", "pairwise_preference@v2",
            "--output", str(tmp_path / "battles.jsonl"), "--resamples", "200",
            "--json", str(out["json"]), "--markdown", str(out["md"]), "--html", str(out["html"]),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (board,) = json.loads(out["json"].read_text())
    assert sorted(r["model"] for r in board["rows"]) == sorted(MODELS)
    battles = (tmp_path / "battles.jsonl").read_text().splitlines()
    assert len(battles) == 20 * 6 * 2 * 3  # every pair judged: both orders x 3 prompt variants
    verdicts = [json.loads(line) for line in (tmp_path / "battles.items.jsonl").open()]
    assert len(verdicts) == 20 * 6  # all pairs of 4 models on 20 questions
    # a verdict with too little label mass (float32 noise can tip one past the threshold) is an
    # invalid battle, counted and left out of the ranking, never a guess
    valid = sum(v["valid"] for v in verdicts)
    assert board["n_battles"] == valid and board["n_questions"] == 20
    assert board["judge"]["card"].startswith("none: the ranking is not certified")
    assert sum(row["n_battles"] - row["n_invalid"] for row in board["rows"]) == 2 * valid
    for row in board["rows"]:
        assert row["n_battles"] == 60 and row["flip_rate"] is not None
    assert "<svg" in out["html"].read_text()
    assert all(f"| {m} |" in out["md"].read_text() for m in MODELS)
