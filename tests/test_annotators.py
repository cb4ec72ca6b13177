"""Annotator models: planted reliabilities recovered, consensus swapped into calibration, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from judgekit import cli
from judgekit.calibrate.annotators import consensus_records, fit_annotators
from judgekit.data.sets import CalibrationRecord
from judgekit.schema import PointwiseItem

runner = CliRunner()
PLANTED = (0.95, 0.85, 0.7, 0.45)
LABELS = ("a", "b", "c")


def planted_records(n: int, rng: np.random.Generator) -> tuple[list[CalibrationRecord], np.ndarray]:
    """Three classes; annotator j gives the true label with probability PLANTED[j], else one of
    the two others uniformly."""
    truth = rng.integers(0, 3, n)
    records = []
    for i, t in enumerate(truth):
        correct = rng.random(len(PLANTED)) < np.array(PLANTED)
        wrong = (t + rng.integers(1, 3, len(PLANTED))) % 3
        human = tuple(LABELS[t if ok else w] for ok, w in zip(correct, wrong, strict=True))
        item = PointwiseItem(id=str(i), question="q", answer="a")
        records.append(CalibrationRecord(id=str(i), item=item, human=human, consensus=None))
    return records, truth


@pytest.fixture(scope="module")
def planted() -> tuple[list[CalibrationRecord], np.ndarray]:
    return planted_records(300, np.random.default_rng(7))


@pytest.mark.parametrize("method", ["dawid-skene", "mace"])
def test_planted_accuracies_recovered(method: str, planted: tuple) -> None:
    records, truth = planted
    fit = fit_annotators(records, method)  # type: ignore[arg-type]
    recovered = [a.reliability for a in fit.annotators]
    assert recovered == pytest.approx(PLANTED, abs=0.05), recovered
    if method == "dawid-skene":  # its native parameter is the same accuracy, from the matrix
        assert [a.native for a in fit.annotators] == pytest.approx(PLANTED, abs=0.05)
        # the weak annotator's confusion matrix: ~0.45 on the diagonal, ~0.275 off it
        weak = np.array(fit.annotators[3].confusion, dtype=float)
        assert np.diag(weak) == pytest.approx([0.45] * 3, abs=0.1)
    hits = np.mean([item.label == LABELS[truth[int(item.id)]] for item in fit.items])
    majority = fit_annotators(records, "majority")
    hits_majority = np.mean([i.label == LABELS[truth[int(i.id)]] for i in majority.items])
    assert hits > 0.95 and hits > hits_majority + 0.03, (hits, hits_majority)


def test_consensus_records_drop_unreliable(planted: tuple) -> None:
    records, truth = planted
    relabelled, fit, dropped = consensus_records(
        records, "dawid-skene", min_reliability=0.6, names=["w1", "w2", "w3", "w4"]
    )
    assert dropped == ["w4"] and fit is not None
    assert [a.name for a in fit.annotators] == ["w1", "w2", "w3"]
    assert all(r.human == o.human[:3] for r, o in zip(relabelled, records, strict=True))
    assert (
        np.mean([r.consensus == LABELS[t] for r, t in zip(relabelled, truth, strict=True)]) > 0.95
    )
    unchanged, no_fit, none = consensus_records(records, "majority")
    assert unchanged == records and no_fit is None and none == []


def test_pandalm_annotators_cli(shared_data: Path, tmp_path: Path) -> None:
    """PandaLM's three annotators are all reliable; Dawid-Skene ranks annotator3 highest, gives
    the same label as the majority on all 999 items, and is below 0.95 sure on 7 of them."""
    result = runner.invoke(
        cli.app,
        [
            "annotators",
            "--set",
            "pandalm",
            "--data-dir",
            str(shared_data),
            "--out",
            str(tmp_path),
            "--model",
            "dawid-skene",
            "--model",
            "majority",
            "--unsure-below",
            "0.95",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "annotators.json").read_text())
    ds = {a["name"]: a["reliability"] for a in report["fits"][0]["annotators"]}
    assert ds == pytest.approx(
        {"annotator1": 0.961, "annotator2": 0.950, "annotator3": 0.966}, abs=1e-3
    )
    assert report["n_items"] == 999 and len(report["unsure"]) == 7
    assert report["agreement_between_models"] == {"dawid-skene vs majority": 1.0}
    assert (tmp_path / "annotators.png").read_bytes()[:4] == b"\x89PNG"
    assert "annotator3" in (tmp_path / "annotators.md").read_text()


def test_calibrate_with_dawid_skene_consensus(
    shared_data: Path, gpt35_args: list[str], tmp_path: Path
) -> None:
    result = runner.invoke(
        cli.app,
        [
            "calibrate",
            "--rubric",
            "pairwise_preference@v1",
            "--set",
            "pandalm",
            *gpt35_args,
            "--split",
            "all",
            "--data-dir",
            str(shared_data),
            "--out",
            str(tmp_path / "report"),
            "--cards-dir",
            str(tmp_path / "cards"),
            "--n-resamples",
            "200",
            "--consensus",
            "dawid-skene",
        ],
    )
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "report" / "card.json").read_text())
    assert card["options"]["consensus"] == "dawid-skene"
    # Dawid-Skene's consensus equals the plurality on every PandaLM item: the same kappa
    assert card["n"] == 999 and card["kappa"]["estimate"] == pytest.approx(0.4705, abs=5e-4)
