"""Issue 22 end to end on the real engine (embedded SmolLM2, float32; few and small): a multi-turn
pairwise file, a reference file, a checklist file and a file with extra columns judge through the
CLI with meta carried to the outputs and per-slice figures; summary_quality on SummEval articles
gives four per-criterion columns and one calibration table; a rubric made with ``rubrics new``
validates with a probe, judges and calibrates against a user file. No test asserts the weak
judge's preferences: files, columns, counts and label mass only."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from scripted import lend
from typer.testing import CliRunner

from judgekit.backends import Backend
from judgekit.cli import app
from judgekit.judging import items_frame, read_run

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


@pytest.mark.parametrize(
    ("rubric", "name", "n_items", "n_requests"),
    [
        ("conversation_preference", "conversation_pairwise.jsonl", 4, 8),
        ("correctness_reference", "reference.jsonl", 12, 12),
        ("instruction_checklist", "checklist.jsonl", 4, 11),
        ("overall_quality", "meta.csv", 8, 8),
    ],
)
def test_new_item_files_judge_end_to_end(
    engine: Backend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rubric: str,
    name: str,
    n_items: int,
    n_requests: int,
) -> None:
    lend(monkeypatch, engine)
    out = tmp_path / "run.jsonl"
    result = runner.invoke(app, ["judge", "--rubric", rubric, "-i", str(EXAMPLES / name), "-o",
                                 str(out), "--variant", "direct", "--by", "category"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "by category (95% CIs resample groups)" in result.output
    judgments = pd.read_json(out, lines=True)
    assert len(judgments) == n_requests
    assert (judgments["num_prompt_tokens"] > 0).all() and (judgments["label_mass"] > 0).all()
    assert judgments["meta"].map(lambda m: "category" in m).all()
    run = read_run(out)
    frame = items_frame(run)
    assert len(frame) == n_items and "category" in frame.columns
    if rubric == "instruction_checklist":
        assert run.verdicts.criteria is not None and "pass_ratio" in frame.columns
        assert set(judgments["criterion"]) == {"check1", "check2", "check3"}
    if rubric == "conversation_preference":
        # both orders of a pair share the conversation: the second is mostly served from cache
        assert judgments["num_cached_tokens"].max() > 0


def test_summary_quality_on_summeval_gives_a_row_per_criterion(
    engine: Backend, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lend(monkeypatch, engine)
    out = tmp_path / "cal"
    result = runner.invoke(app, [
        "calibrate", "--rubric", "summary_quality", "--set", "summeval", "--data-dir",
        str(shared_data), "--limit", "16", "--variant", "direct", "--n-resamples", "100",
        "--out", str(out), "--cards-dir", str(tmp_path / "cards"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = json.loads((out / "criteria.json").read_text())
    assert [(r["criterion"], r["metric"]) for r in table["rows"]] == [
        (c, c) for c in ("coherence", "consistency", "fluency", "relevance")
    ]
    assert all(r["n"] == 16 and r["spearman"] is not None for r in table["rows"])
    assert len(list((tmp_path / "cards").rglob("*.json"))) == 4
    frame = items_frame(read_run(out / "run.jsonl", content=False))
    assert {f"score[{c}]" for c in ("coherence", "consistency", "fluency", "relevance")} <= set(
        frame.columns
    )
    judgments = pd.read_json(out / "run.jsonl", lines=True)
    assert len(judgments) == 16 * 4 and judgments["label_mass"].mean() > 0.2
    # every criterion of an item after the first is read from the shared article prefix
    assert judgments["num_cached_tokens"].sum() > 0.5 * judgments["num_prompt_tokens"].sum()


def test_a_new_rubric_probes_judges_and_calibrates_on_a_user_file(
    engine: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lend(monkeypatch, engine)
    made = runner.invoke(app, ["rubrics", "new", "pass_fail", "--mode", "pointwise", "--labels",
                               "pass=1,fail=0", "--dir", str(tmp_path)])  # fmt: skip
    assert made.exit_code == 0, made.output
    items = EXAMPLES / "pass_fail_labelled.jsonl"
    probed = runner.invoke(app, ["rubrics", "validate", str(tmp_path / "pass_fail" / "v1"),
                                 "--probe", str(items), "--probe-n", "4"])  # fmt: skip
    assert probed.exit_code == 0, probed.output
    assert "probe pass_fail@v1 on 4 items" in probed.output and "detailed" in probed.output
    judged = runner.invoke(app, ["judge", "--rubric", "pass_fail", "--rubrics-dir", str(tmp_path),
                                 "-i", str(items), "-o", str(tmp_path / "j.jsonl")])  # fmt: skip
    assert judged.exit_code == 0, judged.output
    calibrated = runner.invoke(app, [
        "calibrate", "--rubric", "pass_fail", "--rubrics-dir", str(tmp_path), "--set", str(items),
        "--label-column", "human", "--split", "all", "--no-fit-dev", "--n-resamples", "100",
        "--out", str(tmp_path / "cal"), "--cards-dir", str(tmp_path / "cards"),
    ])  # fmt: skip
    assert calibrated.exit_code == 0, calibrated.output
    card = json.loads((tmp_path / "cal" / "card.json").read_text())
    assert card["n"] == 12 and card["label_type"] == "binary"
    assert card["rubric_ref"] == "pass_fail@v1"
