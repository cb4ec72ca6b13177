"""The CLI, through typer's CliRunner, on the README's sample files with the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted import Lent, forbid_engines, lend
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
    "error",
    "criterion",
    "judge_model",
    "judge_fingerprint",
    "engine_settings",
    "num_prompt_tokens",
    "num_cached_tokens",
    "from_store",
    "rationale",
}


@pytest.fixture
def cli_on_engine(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the CLI use the session's engine instead of starting a second one."""
    lend(monkeypatch, engine)


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
        "decision": "argmax",
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
    forbid_engines(monkeypatch)
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
    assert f"{source}: row 2: field 'answer'" in result.output


def test_rubrics_commands() -> None:
    listed = runner.invoke(cli.app, ["rubrics", "list"])
    assert listed.exit_code == 0 and "overall_quality@v1" in listed.output
    shown = runner.invoke(cli.app, ["rubrics", "show", "pairwise_preference@v1"])
    assert shown.exit_code == 0 and json.loads(shown.output)["mode"] == "pairwise"
    checked = runner.invoke(cli.app, ["rubrics", "validate", str(REPO / "rubrics")])
    assert checked.exit_code == 0 and "ok  pairwise_preference@v1" in checked.output


@pytest.mark.engine
def test_all_invalid_pairwise_run_exits_through_its_gates(
    cli_on_engine: None, tmp_path: Path
) -> None:
    """Issue 11: with --min-mass 0.99 no verdict is valid; the old code crashed after judging
    (pydantic: label NaN) and wrote no items file, manifest or summary."""
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    sample = REPO / "examples" / "sample_pairwise.jsonl"
    result = runner.invoke(
        cli.app,
        [
            "judge", "--rubric", "pairwise_preference@v1", "--input", str(sample),
            "--output", str(out), "--variant", "direct", "--min-mass", "0.99",
            "--summary-json", str(summary), "--max-invalid-rate", "0.5",
        ],
    )  # fmt: skip
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1, result.output
    assert "invalid item rate 1.000 is above 0.5" in result.output
    n_items = len(sample.read_text().splitlines())
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == n_items * 2 and not any(r["valid"] for r in rows)
    items = [json.loads(line) for line in (tmp_path / "out.items.jsonl").read_text().splitlines()]
    assert len(items) == n_items
    assert all(i["label"] is None and not i["valid"] and i["score"] is None for i in items)
    numbers = json.loads(summary.read_text())
    assert (numbers["n_valid_items"], numbers["invalid_item_rate"]) == (0, 1.0)
    assert numbers["invalid_judgment_rate"] == 1.0
    assert numbers["label_rates"]["invalid"][0] == 1.0  # every item, in the denominator
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["n_invalid_judgments"] == n_items * 2


@pytest.mark.engine
def test_pairwise_rates_with_ties_and_resume_on_engine(
    engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A / B / tie rates sum to one; --resume on a finished output judges nothing again."""
    counted = Lent(engine)
    lend(monkeypatch, counted)
    out, summary = tmp_path / "out.csv", tmp_path / "summary.json"
    sample = REPO / "examples" / "sample_pairwise.jsonl"
    base = ["judge", "--rubric", "pairwise_preference@v1", "--input", str(sample),
            "-o", str(out), "--variant", "direct", "--summary-json", str(summary)]  # fmt: skip
    first = runner.invoke(cli.app, base)
    assert first.exit_code == 0, first.output
    n_items = len(sample.read_text().splitlines())
    assert counted.requests == n_items * 2
    rates = json.loads(summary.read_text())["label_rates"]
    assert set(rates) == {"A", "B", "tie", "invalid"}
    assert sum(r[0] for r in rates.values()) == pytest.approx(1.0)
    assert runner.invoke(cli.app, base).exit_code == 2  # existing output refused
    resumed = runner.invoke(cli.app, [*base, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert counted.requests == n_items * 2  # nothing judged twice
    assert json.loads(summary.read_text())["label_rates"] == rates
    assert len(out.read_text().splitlines()) == 1 + n_items * 2
