"""Annotator models: planted reliabilities recovered, named votes, the inter-annotator agreement
table (PandaLM's published kappas), consensus swapped into calibration, CLI."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from judgekit import cli
from judgekit.calibrate.measure.annotators import (
    consensus_records,
    fit_annotators,
    inter_annotator_agreement,
)
from judgekit.data.sets import CalibrationRecord, DatasetError
from judgekit.data.user_sets import load_user_set
from judgekit.rubrics import load_rubric
from judgekit.schema import PointwiseItem

runner = CliRunner()
PAIRWISE = load_rubric("pairwise_preference@v1")
VOTERS = ("good1", "good2", "good3", "spammer")
PLANTED = (0.95, 0.85, 0.7, 0.45)
NAMES = ("w1", "w2", "w3", "w4")
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


# MACE: 10 restarts x 50 iterations of crowd-kit's pandas code, ~10 s of CPU whatever the size
@pytest.mark.parametrize("method", ["dawid-skene", pytest.param("mace", marks=pytest.mark.slow)])
def test_planted_accuracies_recovered(method: str, planted: tuple) -> None:
    records, truth = planted
    fit = fit_annotators(records, method, names=NAMES)  # type: ignore[arg-type]
    recovered = [a.reliability for a in fit.annotators]
    assert recovered == pytest.approx(PLANTED, abs=0.05), recovered
    if method == "dawid-skene":  # its native parameter is the same accuracy, from the matrix
        assert [a.native for a in fit.annotators] == pytest.approx(PLANTED, abs=0.05)
        # the weak annotator's confusion matrix: ~0.45 on the diagonal, ~0.275 off it
        weak = np.array(fit.annotators[3].confusion, dtype=float)
        assert np.diag(weak) == pytest.approx([0.45] * 3, abs=0.1)
    hits = np.mean([item.label == LABELS[truth[int(item.id)]] for item in fit.items])
    majority = fit_annotators(records, "majority", names=NAMES)
    hits_majority = np.mean([i.label == LABELS[truth[int(i.id)]] for i in majority.items])
    assert hits > 0.95 and hits > hits_majority + 0.03, (hits, hits_majority)


def test_consensus_records_drop_unreliable(planted: tuple) -> None:
    records, truth = planted
    relabelled, fit, dropped = consensus_records(
        records, "dawid-skene", min_reliability=0.6, names=NAMES
    )
    assert dropped == ["w4"] and fit is not None
    assert [a.name for a in fit.annotators] == ["w1", "w2", "w3"]
    assert all(r.human == o.human[:3] for r, o in zip(relabelled, records, strict=True))
    assert (
        np.mean([r.consensus == LABELS[t] for r, t in zip(relabelled, truth, strict=True)]) > 0.95
    )
    unchanged, no_fit, none = consensus_records(records, "majority")
    assert unchanged == records and no_fit is None and none == []


def spam_votes(n: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """A vote-style set, one row per vote: each item gets 3 of the 4 voters; good1..3 give the
    true label (A/B/tie, uniform) with probability 0.95, else one of the two others; the spammer
    a uniform random label. Rows are shuffled, so a vote's position says nothing about its voter."""
    rows = []
    for i in range(n):
        truth = rng.integers(0, 3)
        for who in rng.choice(VOTERS, size=3, replace=False):
            if who == "spammer":
                label = rng.integers(0, 3)
            elif rng.random() < 0.95:
                label = truth
            else:
                label = (truth + rng.integers(1, 3)) % 3
            rows.append(
                {
                    "item": f"i{i}",
                    "question": f"q{i}",
                    "answer_a": "a",
                    "answer_b": "b",
                    "vote": ("A", "B", "tie")[label],
                    "judge": str(who),
                    "truth": ("A", "B", "tie")[truth],
                }
            )
    return [rows[k] for k in rng.permutation(len(rows))]


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_spammer_found_from_named_votes(tmp_path: Path) -> None:
    """Votes placed by their annotator column: Dawid-Skene finds the spammer. Positional identity
    (the n-th vote of an item) gave 0.773/0.776/0.766 for three 'annotators' on these rows."""
    rng = np.random.default_rng(3)
    rows = spam_votes(400, rng)
    path = _write_csv(tmp_path / "votes.csv", rows)
    named = load_user_set(
        path, PAIRWISE, label_column="vote", group_column="item", annotator_column="judge"
    )
    assert named.annotator_names == VOTERS
    assert sum(h is None for h in named.records[0].human) == 1  # 3 of 4 voted
    fit = fit_annotators(named.records, "dawid-skene", names=named.annotator_names)
    reliability = [fit.reliability()[v] for v in VOTERS]
    accuracy = [np.mean([r["vote"] == r["truth"] for r in rows if r["judge"] == v]) for v in VOTERS]
    assert reliability == pytest.approx(accuracy, abs=0.04)  # each voter's share of true labels
    assert reliability == pytest.approx([0.95, 0.95, 0.95, 1 / 3], abs=0.05)
    assert reliability == pytest.approx([0.909, 0.971, 0.946, 0.340], abs=1e-3)  # seed 3
    # the same votes in another row order give the same records
    shuffled = _write_csv(tmp_path / "shuffled.csv", [rows[k] for k in rng.permutation(len(rows))])
    again = load_user_set(
        shuffled, PAIRWISE, label_column="vote", group_column="item", annotator_column="judge"
    )
    assert {r.id: r.human for r in again.records} == {r.id: r.human for r in named.records}
    # without the annotator column: anonymous, refused by the models, never positional
    anonymous = load_user_set(path, PAIRWISE, label_column="vote", group_column="item")
    assert anonymous.annotator_names is None
    with pytest.raises(DatasetError, match=r"anonymous .*--annotator-column"):
        fit_annotators(anonymous.records, "dawid-skene", names=anonymous.annotator_names)
    with pytest.raises(DatasetError, match="anonymous"):
        consensus_records(anonymous.records, "majority", min_reliability=0.5)
    assert consensus_records(anonymous.records, "majority")[0] == list(anonymous.records)
    # dropping the spammer keeps names and labels aligned: its column goes
    kept, _, dropped = consensus_records(
        named.records, "dawid-skene", min_reliability=0.6, names=named.annotator_names
    )
    assert dropped == ["spammer"]
    assert all(k.human == r.human[:3] for k, r in zip(kept, named.records, strict=True))


def _register(folder: Path, rows: list[dict[str, str]], annotator: str | None) -> Path:
    """The simulated votes as a registered set: a JSONL file and its manifest."""
    data = folder / "data" / "votes.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    revision = "0" * 40
    manifest = {
        "name": "sim_votes",
        "description": "simulated votes",
        "source": {
            "kind": "github",
            "repo": "example/votes",
            "revision": revision,
            "path": "votes.jsonl",
            "url": f"https://example.org/{revision}/votes.jsonl",
        },
        "licence": "CC0",
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "local_path": "votes.jsonl",
        "format": {"kind": "jsonl"},
        "label_type": "pairwise",
        "mode": "pairwise",
        "fields": {
            "id": "item",
            "question": "question",
            "answer_a": "answer_a",
            "answer_b": "answer_b",
        },
        "annotators": {"votes": "vote", **({"annotator": annotator} if annotator else {})},
        "split_group": "item",
        "labels": {"A": "A", "B": "B", "tie": "tie"},
    }
    path = folder / "sets" / "sim_votes.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return path


def _annotators_cli(manifest: Path, out: Path, *options: str) -> object:
    data = manifest.parent.parent / "data"
    return runner.invoke(
        cli.app,
        [
            "annotators",
            "--set",
            str(manifest),
            "--data-dir",
            str(data),
            "--out",
            str(out),
            *options,
        ],
    )


def test_agreement_table_on_named_and_anonymous_votes(tmp_path: Path) -> None:
    """Named votes: pairwise kappa finds the spammer (~0 against everyone, ~0.86 between good
    voters). Fleiss and alpha need no identity: the same values on anonymous votes, where the
    report has no models and asking for one exits 2."""
    rows = spam_votes(400, np.random.default_rng(3))
    named = _register(tmp_path / "named", rows, "judge")
    result = _annotators_cli(named, tmp_path / "named_out", "--model", "dawid-skene")
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "named_out" / "annotators.json").read_text())["agreement"]
    kappa = {(p["a"], p["b"]): p["kappa"] for p in table["pairs"]}
    assert len(kappa) == 6 and table["annotators"] == list(VOTERS)
    assert [kappa[a, b] for a, b in kappa if "spammer" in (a, b)] == pytest.approx([0] * 3, abs=0.1)
    assert [kappa[a, b] for a, b in kappa if "spammer" not in (a, b)] == pytest.approx(
        [0.856] * 3,
        abs=0.08,  # 0.95^2 + 2 x 0.025^2 agreement against 1/3 by chance
    )
    assert "| spammer |" in (tmp_path / "named_out" / "annotators.md").read_text()

    anonymous = _register(tmp_path / "anon", rows, None)
    result = _annotators_cli(anonymous, tmp_path / "anon_out")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "anon_out" / "annotators.json").read_text())
    assert report["fits"] == [] and report["agreement"]["pairs"] == []
    assert report["agreement"]["annotators"] is None and report["n_items"] == 400
    for key in ("fleiss_kappa", "krippendorff_alpha", "fleiss_n_items", "alpha_n_items"):
        assert report["agreement"][key] == table[key], key
    assert table["fleiss_n_items"] == 400  # every item has three votes
    assert not (tmp_path / "anon_out" / "annotators.png").exists()
    refused = _annotators_cli(anonymous, tmp_path / "anon_out", "--model", "dawid-skene")
    assert refused.exit_code == 2 and "anonymous" in refused.output


def test_agreement_table_matches_reference_libraries() -> None:
    """Ordinal labels, some missing: quadratic kappa per pair as scikit-learn on shared items,
    ordinal alpha as the krippendorff package; Fleiss refuses varying label counts."""
    krippendorff = pytest.importorskip("krippendorff")
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(11)
    truth = rng.integers(1, 6, 200)
    scores = np.clip(truth[:, None] + rng.integers(-1, 2, (200, 3)), 1, 5).astype(float)
    scores[rng.random((200, 3)) < 0.15] = np.nan
    records = [
        CalibrationRecord(
            id=str(i),
            item=PointwiseItem(id=str(i), question="q", answer="a"),
            human=tuple(None if np.isnan(v) else float(v) for v in row),
            consensus=None,
        )
        for i, row in enumerate(scores)
    ]
    table = inter_annotator_agreement(records, ["r1", "r2", "r3"], "ordinal")
    for pair in table.pairs:
        i, j = int(pair.a[1]) - 1, int(pair.b[1]) - 1
        both = ~np.isnan(scores[:, i]) & ~np.isnan(scores[:, j])
        expected = metrics.cohen_kappa_score(
            scores[both, i], scores[both, j], weights="quadratic", labels=[1, 2, 3, 4, 5]
        )
        assert pair.kappa == pytest.approx(expected, abs=1e-12) and pair.n_items == both.sum()
    assert table.krippendorff_alpha == pytest.approx(
        krippendorff.alpha(scores.T, level_of_measurement="ordinal"), abs=1e-12
    )
    assert table.fleiss_kappa is None and table.kappa_weights == "quadratic"
    assert table.alpha_level == "ordinal"


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


def test_pandalm_agreement_table_as_published(shared_data: Path, tmp_path: Path) -> None:
    """PandaLM's README prints pairwise Cohen's kappa 0.85 (1-2), 0.88 (1-3), 0.86 (2-3); Fleiss'
    kappa is 0.86. They are unweighted Cohen's kappa with tie (0) as a third nominal category, on
    all 999 items of testset-v1.json (linear or quadratic weights, or dropping ties, give other
    numbers), and Fleiss' 1971 kappa. Checked against scikit-learn, statsmodels, krippendorff."""
    krippendorff = pytest.importorskip("krippendorff")
    metrics = pytest.importorskip("sklearn.metrics")
    inter_rater = pytest.importorskip("statsmodels.stats.inter_rater")
    result = runner.invoke(
        cli.app,
        [
            *("annotators", "--set", "pandalm", "--model", "majority"),
            *("--data-dir", str(shared_data), "--out", str(tmp_path)),
        ],
    )
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "annotators.json").read_text())["agreement"]
    kappa = {(p["a"][-1], p["b"][-1]): p["kappa"] for p in table["pairs"]}
    assert kappa == pytest.approx(
        {("1", "2"): 0.8520, ("1", "3"): 0.8789, ("2", "3"): 0.8617}, abs=1e-4
    )
    assert {k: round(v, 2) for k, v in kappa.items()} == {
        ("1", "2"): 0.85,
        ("1", "3"): 0.88,
        ("2", "3"): 0.86,
    }
    assert table["mean_pairwise_kappa"] == pytest.approx(0.8642, abs=1e-4)
    assert (
        table["fleiss_kappa"] == pytest.approx(0.8642, abs=1e-4) and table["fleiss_n_items"] == 999
    )
    assert table["krippendorff_alpha"] == pytest.approx(0.8642, abs=1e-4)
    assert table["alpha_level"] == "nominal" and table["kappa_weights"] is None
    raw = json.loads((shared_data / "pandalm" / "testset-v1.json").read_text())
    labels = np.array([[row[f"annotator{k}"] for k in (1, 2, 3)] for row in raw])
    for (a, b), value in kappa.items():
        i, j = int(a) - 1, int(b) - 1
        assert value == pytest.approx(metrics.cohen_kappa_score(labels[:, i], labels[:, j]))
    counts, _ = inter_rater.aggregate_raters(labels)
    assert table["fleiss_kappa"] == pytest.approx(inter_rater.fleiss_kappa(counts))
    assert table["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(labels.T.astype(float), level_of_measurement="nominal")
    )
    markdown = (tmp_path / "annotators.md").read_text()
    assert "| annotator1 | 1 | 0.852 | 0.879 |" in markdown
    assert "| Fleiss' kappa | 0.864 | 999 |" in markdown


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
