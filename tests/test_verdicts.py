"""Item verdicts on a scripted judge: invalid items, ties, label roles, variant drop-out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import judgekit
from judgekit import cli
from judgekit.ci import gates
from judgekit.judging.decide import decide
from judgekit.rubrics import Rubric
from judgekit.rubrics.load import load_rubric_dir
from judgekit.schema import Controls, PairwiseItem, PointwiseItem
from tests.scripted import ScriptedBackend, lend

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
PAIRS = [PairwiseItem(id=str(i), question=f"q{i}", answer_a="a", answer_b="b") for i in range(4)]
ANSWERS = [PointwiseItem(id=str(i), question=f"q{i}", answer="x") for i in range(4)]


def _first_shown(item: str, variant: str, order: str) -> dict[str, float]:
    """A judge that always prefers whichever answer is shown first (label "A" in the prompt)."""
    return {"A": 0.9, "B": 0.1}


# ------------------------------------------------------------------ 1. all-invalid items


def test_item_without_both_orders_is_an_invalid_row(tmp_path: Path) -> None:
    """Old code: pydantic ValidationError (label NaN) after every judgment was made."""

    def script(item: str, variant: str, order: str) -> dict[str, float] | None:
        if item == "0":
            return None if (variant, order) in {("direct", "BA"), ("expert", "AB")} else _AB
        return _AB

    _AB = {"A": 0.8, "B": 0.2}
    out = tmp_path / "out.jsonl"
    run = judgekit.judge(
        PAIRS,
        "pairwise_preference@v1",
        backend=ScriptedBackend(script),
        variants=["direct", "expert"],
        output=out,
    )
    rows = [json.loads(x) for x in (tmp_path / "out.items.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    first = rows[0]
    assert (first["label"], first["valid"], first["score"]) == (None, False, None)
    assert (first["n_judgments"], first["n_valid_judgments"], first["n_valid_variants"]) == (
        4,
        2,
        0,
    )
    summary = judgekit.summarize(run)
    assert summary.n_valid_items == 3 and summary.invalid_item_rate == 0.25
    assert (tmp_path / "out.manifest.json").is_file()


def test_all_items_invalid_summary_and_gates_do_not_raise() -> None:
    run = judgekit.judge(
        PAIRS, "pairwise_preference@v1", backend=ScriptedBackend(lambda *key: None)
    )
    summary = judgekit.summarize(run)
    assert summary.n_valid_items == 0 and summary.label_rates["invalid"][0] == 1.0
    assert summary.invalid_item_rate == 1.0 and summary.invalid_judgment_rate == 1.0
    assert "of all 4 items is below 0.5 (100.0% of items invalid)" in gates.win_rate_gate(
        run, 0.5, "A"
    )
    assert gates.invalid_rate_gate(run, 0.5) == "invalid item rate 1.000 is above 0.5"
    assert "4 (0 valid" in summary.format()


# ------------------------------------------------------------------ 2. ties


@pytest.mark.parametrize("method", ["soft", "hard"])
def test_first_position_judge_gets_ties_not_a_wins(method: str) -> None:
    """Old code: A win rate 1.0 under both swap methods."""
    run = judgekit.judge(
        PAIRS,
        "pairwise_preference@v1",
        backend=ScriptedBackend(_first_shown),
        controls=Controls(swap_method=method),
    )
    rates = judgekit.summarize(run).label_rates
    assert rates["A"][0] == 0.0 and rates["B"][0] == 0.0 and rates["tie"][0] == 1.0
    assert all(v.label == "tie" and v.tie for v in judgekit.item_verdicts(run))
    assert "win rate of A 0.000" in gates.win_rate_gate(run, 0.5, "A")


def test_tie_band_decides_near_even_pairs() -> None:
    probs = np.array([[0.52, 0.48], [0.6, 0.4], [0.4, 0.6], [0.5, 0.5], [np.nan, np.nan]])
    banded = decide(probs, ("A", "B"), (1, 0), "pairwise", Controls(tie_band=0.05))
    assert banded.labels == ["tie", "A", "B", "tie", None]
    assert banded.ties.tolist() == [True, False, False, True, False]
    exact = decide(probs, ("A", "B"), (1, 0), "pairwise", Controls(tie_band=0.0))
    assert exact.labels == ["A", "A", "B", "tie", None]
    # A rubric tie label wins when it is the most probable, in any column.
    with_tie = decide(
        np.array([[0.3, 0.45, 0.25]]),
        ("A", "tie", "B"),
        (1, 0.5, 0),
        "pairwise",
        Controls(tie_band=0),
    )
    assert with_tie.labels == ["tie"]


def _rubric_a_tie_b(tmp_path: Path) -> Rubric:
    """pairwise_preference with a tie label listed between A and B."""
    folder = tmp_path / "pairwise_tie" / "v1"
    shutil.copytree(REPO / "rubrics" / "pairwise_preference" / "v1", folder)
    manifest = (folder / "rubric.yaml").read_text()
    manifest = manifest.replace("name: pairwise_preference", "name: pairwise_tie").replace(
        '  - {label: "B"',
        '  - {label: "tie", value: 0.5, meaning: "Equally good."}\n  - {label: "B"',
    )
    (folder / "rubric.yaml").write_text(manifest)
    rubric = load_rubric_dir(folder)
    assert rubric.labels == ("A", "tie", "B")
    return rubric


@pytest.mark.parametrize("method", ["soft", "hard"])
def test_rubric_listing_a_tie_b_reads_roles_by_name(tmp_path: Path, method: str) -> None:
    """Old code, hard swap: the disagreement became one-hot on the third column, a confident B."""
    rubric = _rubric_a_tie_b(tmp_path)

    def script(item: str, variant: str, order: str) -> dict[str, float]:
        return {"A": 0.7, "tie": 0.1, "B": 0.2}  # picks the first-shown answer in both orders

    run = judgekit.judge(
        PAIRS[:2],
        rubric,
        backend=ScriptedBackend(script),
        variants=["direct"],
        controls=Controls(swap_method=method),
    )
    verdicts = judgekit.item_verdicts(run)
    assert [v.label for v in verdicts] == ["tie", "tie"]
    probs = verdicts[0].label_probs
    assert probs is not None and probs["A"] == pytest.approx(probs["B"])
    if method == "hard":
        assert probs == {"A": 0.0, "tie": 1.0, "B": 0.0}


def test_pointwise_exact_tie_has_no_label_but_a_score() -> None:
    def script(item: str, variant: str, order: str) -> dict[str, float]:
        return {"3": 0.4, "4": 0.4, "5": 0.2} if item == "0" else {"4": 0.9, "5": 0.1}

    run = judgekit.judge(
        ANSWERS, "overall_quality@v1", backend=ScriptedBackend(script), variants=["direct"]
    )
    first, second = judgekit.item_verdicts(run)[:2]
    assert (first.label, first.tie, first.valid) == (None, True, True)
    assert first.score == pytest.approx(3 * 0.4 + 4 * 0.4 + 5 * 0.2)
    assert (second.label, second.tie) == ("4", False)
    assert judgekit.summarize(run).n_ties == 1


# ------------------------------------------------------------------ 9. variant drop-out


def _two_of_three_fail(item: str, variant: str, order: str) -> dict[str, float] | None:
    return {"4": 1.0} if variant == "direct" else None


def test_variant_dropout_is_reported_and_gated() -> None:
    """Old code: every item valid, no per-judgment rate, the item gate passes at 2/3 invalid."""
    run = judgekit.judge(ANSWERS, "overall_quality@v1", backend=ScriptedBackend(_two_of_three_fail))
    summary = judgekit.summarize(run)
    assert summary.n_valid_items == 4 and summary.invalid_item_rate == 0.0
    assert summary.invalid_judgment_rate == pytest.approx(2 / 3)
    assert summary.invalid_judgment_rate_by_variant == {
        "direct": 0.0,
        "checklist": 1.0,
        "strict": 1.0,
    }
    assert summary.n_partial_items == 4
    verdict = judgekit.item_verdicts(run)[0]
    assert verdict.partial and (verdict.n_variants, verdict.n_valid_variants) == (3, 1)
    assert gates.invalid_rate_gate(run, 0.1) is None
    failure = gates.invalid_judgment_rate_gate(run, 0.1)
    assert failure is not None and failure.startswith("invalid judgment rate 0.667 is above 0.1")


def test_cli_gates_on_judgments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = ScriptedBackend(_two_of_three_fail)
    lend(monkeypatch, backend)
    source = tmp_path / "items.jsonl"
    source.write_text("".join(a.model_dump_json() + "\n" for a in ANSWERS))
    base = ["judge", "--rubric", "overall_quality@v1", "--input", str(source)]
    ok = runner.invoke(
        cli.app, [*base, "-o", str(tmp_path / "a.jsonl"), "--max-invalid-item-rate", "0.1"]
    )
    assert ok.exit_code == 0, ok.output
    assert "judgments 66.7%" in ok.output
    failed = runner.invoke(
        cli.app,
        [*base, "-o", str(tmp_path / "b.jsonl"), "--max-invalid-rate", "0.1",
         "--max-invalid-judgment-rate", "0.1"],
    )  # fmt: skip
    assert failed.exit_code == 1 and "invalid judgment rate 0.667" in failed.output
