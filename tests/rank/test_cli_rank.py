"""``judgekit rank --judgments``: every output written, trust columns shown, bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from judgekit.cli import app
from judgekit.rank import simulate_battles

runner = CliRunner()


def _judgments(path: Path) -> Path:
    rng = np.random.default_rng(0)
    battles = simulate_battles(np.array([0.0, 0.8, -0.8, 1.6]), 40, rng, baseline=0)
    names = np.asarray(battles.models, object)
    with path.open("w") as handle:
        for k in range(len(battles)):
            q = battles.questions[battles.question[k]]
            handle.write(
                json.dumps(
                    {
                        "question": q,
                        "model_a": names[battles.model_a[k]],
                        "model_b": names[battles.model_b[k]],
                        "verdict": {1.0: "A", 0.0: "B", 0.5: "tie"}[battles.outcome[k]]
                        if k % 50
                        else None,
                        "category": "even" if int(q) % 2 == 0 else "odd",
                        "flip": k % 3 == 0,
                    }
                )
                + "\n"
            )
    return path


def test_rank_writes_every_output(tmp_path: Path) -> None:
    path = _judgments(tmp_path / "verdicts.jsonl")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "rank",
            "--judgments",
            str(path),
            "--baseline",
            "m00",
            "--by",
            "category",
            "--resamples",
            "200",
            "--judged-by",
            "smollm2",
            "--json",
            str(out / "board.json"),
            "--markdown",
            str(out / "board.md"),
            "--html",
            str(out / "board.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "judge: smollm2; card: not checked" in result.output
    assert "flip rate" in result.output and "invalid" in result.output
    boards = json.loads((out / "board.json").read_text())
    assert [b["category"] for b in boards] == [None, "even", "odd"]
    rows = {r["model"]: r for r in boards[0]["rows"]}
    assert rows["m00"]["score"] == 1000.0 and rows["m00"]["low"] == 1000.0
    assert [r["model"] for r in boards[0]["rows"]] == ["m03", "m01", "m00", "m02"]
    assert sum(r["n_invalid"] for r in boards[0]["rows"]) == 2 * 5  # rows 0, 50, ..., 200
    assert rows["m01"]["flip_rate"] is not None
    html = (out / "board.html").read_text()
    assert html.count("<svg") == 3 and "m03" in html
    assert "| rank |" in (out / "board.md").read_text()


def test_bad_input_exits_2_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": 1, "model_a": "x", "model_b": "y", "verdict": "maybe"}\n')
    result = runner.invoke(app, ["rank", "--judgments", str(path)])
    assert result.exit_code == 2
    assert "row 1: field 'verdict'" in result.output


def test_pointwise_ranking(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    lines = ["question,model,score"] + [
        f"{q},{m},{s + (q % 3)}" for q in range(20) for m, s in (("a", 3), ("b", 2))
    ]
    path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["rank", "--judgments", str(path), "--pointwise"])
    assert result.exit_code == 0, result.output
    assert "mean score (mean)" in result.output
