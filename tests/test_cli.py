"""The CLI, through typer's CliRunner, on the README's sample files with the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from judgekit import cli

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

DOCUMENTED_COLUMNS = {
    "item_id",
    "rubric",
    "rubric_version",
    "rubric_hash",
    "variant",
    "order",
    "label_probs",
    "label_mass",
    "expected_score",
    "label",
    "valid",
    "invalid_reason",
    "judge_model",
    "judge_fingerprint",
    "engine_settings",
    "num_prompt_tokens",
    "num_cached_tokens",
    "from_store",
}


@pytest.fixture
def cli_on_engine(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the CLI use the session's engine instead of starting a second one."""
    monkeypatch.setattr(cli.judge, "create_backend", lambda kind, **options: engine)


@pytest.mark.engine
def test_judge_sample_file(cli_on_engine: None, tmp_path: Path) -> None:
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    result = runner.invoke(
        cli.app,
        [
            "judge",
            "--rubric",
            "overall_quality@v1",
            "--input",
            str(REPO / "examples" / "sample_pointwise.jsonl"),
            "--output",
            str(out),
            "--summary-json",
            str(summary),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    n_items = len((REPO / "examples" / "sample_pointwise.jsonl").read_text().splitlines())
    assert len(rows) == n_items * 3
    assert set(rows[0]) == DOCUMENTED_COLUMNS
    assert "mean score" in result.output and "prefix cache" in result.output
    items = [json.loads(line) for line in (tmp_path / "out.items.jsonl").read_text().splitlines()]
    assert len(items) == n_items
    assert items[0]["controls"] == {
        "position_swap": "off",
        "ensemble": "mean of 3",
        "length": "off",
    }
    numbers = json.loads(summary.read_text())
    assert numbers["n_items"] == n_items and numbers["cache_hit_rate"] > 0.3


@pytest.mark.engine
def test_judge_pairwise_csv_output_with_column_mapping(cli_on_engine: None, tmp_path: Path) -> None:
    source = tmp_path / "pairs.csv"
    rows = [
        json.loads(x)
        for x in (REPO / "examples" / "sample_pairwise.jsonl").read_text().split("\n")
        if x
    ]
    lines = ["key,prompt,first,second"] + [
        ",".join(json.dumps(r[k]) for k in ("id", "question", "answer_a", "answer_b"))
        for r in rows[:3]
    ]
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    result = runner.invoke(
        cli.app,
        [
            "judge",
            "--rubric",
            "pairwise_preference",
            "--input",
            str(source),
            "--output",
            str(out),
            "--column",
            "id=key",
            "--column",
            "question=prompt",
            "--column",
            "answer_a=first",
            "--column",
            "answer_b=second",
            "--variant",
            "direct",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1 + 3 * 2
    assert "rate A" in result.output


def test_bad_input_names_file_row_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.judge, "create_backend", lambda kind, **options: object())
    source = tmp_path / "items.jsonl"
    source.write_text('{"id": "a", "question": "q", "answer": "x"}\n{"id": "b", "question": "q"}\n')
    result = runner.invoke(
        cli.app,
        [
            "judge",
            "--rubric",
            "overall_quality",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "o.jsonl"),
        ],
    )
    assert result.exit_code == 2
    assert f"{source}: row 1: field 'answer'" in result.output


def test_rubrics_commands() -> None:
    listed = runner.invoke(cli.app, ["rubrics", "list"])
    assert listed.exit_code == 0 and "overall_quality@v1" in listed.output
    shown = runner.invoke(cli.app, ["rubrics", "show", "pairwise_preference@v1"])
    assert shown.exit_code == 0 and json.loads(shown.output)["mode"] == "pairwise"
    checked = runner.invoke(cli.app, ["rubrics", "validate", str(REPO / "rubrics")])
    assert checked.exit_code == 0 and "ok  pairwise_preference@v1" in checked.output
