"""Agreement statistics against independent references, on real human labels and textbook cases.

References (test-only dependencies): scikit-learn, statsmodels, krippendorff, scipy.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from numpy.typing import ArrayLike
from scipy import stats as sps
from sklearn.metrics import cohen_kappa_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from judgekit.stats import (
    HumanCeiling,
    accuracy,
    cohen_kappa,
    confusion_matrix,
    fleiss_kappa,
    human_ceiling,
    kendall_tau,
    krippendorff_alpha,
    pearson,
    spearman,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NEWSROOM_METRICS = ("Informativeness", "Relevance", "Fluency", "Coherence")
TOL = 1e-9


def _load(relative: str) -> object:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"shared data file {path} not found (expected ../shared/data next to the repo)")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pandalm() -> np.ndarray:
    """PandaLM test set: 999 items x 3 annotators, labels 0=tie, 1, 2."""
    rows = _load("pandalm/testset-v1.json")
    return np.array([[r["annotator1"], r["annotator2"], r["annotator3"]] for r in rows])


@pytest.fixture(scope="module")
def newsroom() -> dict[str, np.ndarray]:
    """Newsroom (JUDGE-BENCH): per metric, 420 items x 3 Likert ratings 1-5.

    Rater order is not stable across items, so columns are rating slots, not people; that does
    not matter for comparing two implementations on the same arrays.
    """
    data = _load("newsroom/newsroom.json")
    return {
        m: np.array(
            [i["annotations"][m]["individual_human_scores"] for i in data["instances"]],
            dtype=float,
        )
        for m in NEWSROOM_METRICS
    }


def _with_missing(ratings: np.ndarray, share: float, seed: int) -> np.ndarray:
    out = ratings.astype(float).copy()
    out[np.random.default_rng(seed).random(out.shape) < share] = np.nan
    return out


def _majority(ratings: np.ndarray) -> np.ndarray:
    """Hand majority per row with ties as NaN, written independently of the library."""
    out = np.full(ratings.shape[0], np.nan)
    for i, row in enumerate(ratings):
        vals, counts = np.unique(row[~np.isnan(row)], return_counts=True)
        if counts.size and (counts == counts.max()).sum() == 1:
            out[i] = vals[counts.argmax()]
    return out


# --- PandaLM: real pairwise labels -----------------------------------------------------------


@pytest.mark.parametrize(
    ("i", "j", "expected"),
    [(0, 1, 0.85), (0, 2, 0.88), (1, 2, 0.86)],
    ids=["a1-a2", "a1-a3", "a2-a3"],
)
def test_pandalm_pairwise_cohen_kappa(pandalm: np.ndarray, i: int, j: int, expected: float) -> None:
    ours = cohen_kappa(pandalm[:, i], pandalm[:, j])
    assert ours == pytest.approx(cohen_kappa_score(pandalm[:, i], pandalm[:, j]), abs=TOL)
    assert round(ours, 2) == expected  # shared README: annotators agree at 0.85-0.88


def test_pandalm_fleiss_kappa(pandalm: np.ndarray) -> None:
    ours = fleiss_kappa(pandalm)
    assert ours == pytest.approx(sm_fleiss_kappa(aggregate_raters(pandalm)[0]), abs=TOL)
    assert round(ours, 2) == 0.86  # shared README: Fleiss 0.86


def test_pandalm_nominal_alpha(pandalm: np.ndarray) -> None:
    ours = krippendorff_alpha(pandalm.T, "nominal")
    ref = krippendorff.alpha(
        reliability_data=pandalm.T.astype(float), level_of_measurement="nominal"
    )
    assert ours == pytest.approx(ref, abs=TOL)
    assert round(ours, 2) == 0.86


def test_pandalm_alpha_with_missing(pandalm: np.ndarray) -> None:
    data = _with_missing(pandalm.T, 0.25, seed=7)
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert krippendorff_alpha(data, "nominal") == pytest.approx(ref, abs=TOL)


def test_pandalm_confusion_matrix_label_order(pandalm: np.ndarray) -> None:
    labels = [2, 0, 1]
    ours = confusion_matrix(pandalm[:, 0], pandalm[:, 1], labels)
    np.testing.assert_array_equal(
        ours, sk_confusion_matrix(pandalm[:, 0], pandalm[:, 1], labels=labels)
    )
    assert ours.sum() == pandalm.shape[0]


def test_pandalm_accuracy(pandalm: np.ndarray) -> None:
    assert accuracy(pandalm[:, 0], pandalm[:, 1]) == np.mean(pandalm[:, 0] == pandalm[:, 1])


# --- Newsroom: real Likert ratings -----------------------------------------------------------


@pytest.mark.parametrize("metric", NEWSROOM_METRICS)
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_newsroom_weighted_kappa(
    newsroom: dict[str, np.ndarray], metric: str, weights: str | None
) -> None:
    r = newsroom[metric]
    for i, j in combinations(range(3), 2):
        ref = cohen_kappa_score(r[:, i], r[:, j], labels=[1, 2, 3, 4, 5], weights=weights)
        ours = cohen_kappa(r[:, i], r[:, j], labels=[1, 2, 3, 4, 5], weights=weights)
        assert ours == pytest.approx(ref, abs=TOL)


@pytest.mark.parametrize("metric", NEWSROOM_METRICS)
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_newsroom_alpha(
    newsroom: dict[str, np.ndarray], metric: str, level: str, missing: float
) -> None:
    data = _with_missing(newsroom[metric].T, missing, seed=11)
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(data, level) == pytest.approx(ref, abs=TOL)


@pytest.mark.parametrize("metric", NEWSROOM_METRICS)
def test_newsroom_correlations(newsroom: dict[str, np.ndarray], metric: str) -> None:
    r = newsroom[metric]
    x, y = r[:, 0], r[:, 1:].mean(axis=1)
    assert pearson(x, y) == pytest.approx(sps.pearsonr(x, y).statistic, abs=TOL)
    assert spearman(x, y) == pytest.approx(sps.spearmanr(x, y).statistic, abs=TOL)
    assert kendall_tau(x, y) == pytest.approx(sps.kendalltau(x, y).statistic, abs=TOL)


def test_interval_alpha_on_continuous_scores() -> None:
    # Every value distinct (judge expected scores): the closed-form path against the package.
    rng = np.random.default_rng(21)
    data = rng.normal(size=60) + rng.normal(0.0, 0.7, (4, 60))  # the package is O(values^2)
    data[rng.random(data.shape) < 0.2] = np.nan
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    assert krippendorff_alpha(data, "interval") == pytest.approx(ref, abs=TOL)


# --- Textbook cases computed by hand ---------------------------------------------------------


def test_cohen_kappa_2x2_by_hand() -> None:
    # Table (rows a, cols b): [[20, 5], [10, 15]], n = 50.
    # p_o = (20 + 15) / 50 = 0.7; row margins 25/25, column margins 30/20;
    # p_e = (25*30 + 25*20) / 50^2 = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    a = np.array([0] * 25 + [1] * 25)
    b = np.array([0] * 20 + [1] * 5 + [0] * 10 + [1] * 15)
    np.testing.assert_array_equal(confusion_matrix(a, b), [[20, 5], [10, 15]])
    assert cohen_kappa(a, b) == pytest.approx(0.4, abs=1e-12)
    assert accuracy(a, b) == pytest.approx(0.7)


def test_weighted_kappa_by_hand_and_label_order() -> None:
    # a = [0,1,2], b = [0,2,2]: one disagreement at distance 1. Margins rows (1,1,1), cols (1,0,2);
    # expected cells E[i,j] = row_i * col_j / 3. Linear expected disagreement
    # = 4/3 + 1 + 2/3 = 3 -> kappa = 1 - 1/3. Quadratic: 8/3 + 1 + 4/3 = 5 -> kappa = 1 - 1/5.
    a, b = [0, 1, 2], [0, 2, 2]
    assert cohen_kappa(a, b, weights="linear") == pytest.approx(2 / 3, abs=1e-12)
    assert cohen_kappa(a, b, weights="quadratic") == pytest.approx(0.8, abs=1e-12)
    # Order (0, 2, 1) puts label 1 last: positions a = [0,2,1], b = [0,1,1]; columns (1,2,0),
    # expected linear disagreement 2/3 + 1/3 + 4/3 = 7/3, observed 1 -> kappa = 1 - 3/7.
    ours = cohen_kappa(a, b, labels=[0, 2, 1], weights="linear")
    assert ours == pytest.approx(4 / 7, abs=1e-12)
    assert ours == pytest.approx(cohen_kappa_score(a, b, labels=[0, 2, 1], weights="linear"))


def test_fleiss_kappa_wikipedia_example() -> None:
    # Fleiss (1971) as tabulated on Wikipedia: 10 items, 14 raters, 5 categories;
    # P_bar = 0.378, P_e = 0.213, kappa = 0.210.
    table = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    ratings = np.array([np.repeat(np.arange(5), row) for row in table])
    assert fleiss_kappa(ratings) == pytest.approx(0.20993, abs=1e-5)
    assert fleiss_kappa(ratings) == pytest.approx(sm_fleiss_kappa(table), abs=TOL)


@pytest.mark.parametrize(
    ("level", "expected"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_textbook_example(level: str, expected: float) -> None:
    # Krippendorff (2011) "Computing Krippendorff's alpha-reliability", 4 coders x 12 units.
    n = np.nan
    data = np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
            [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
        ]
    )
    assert round(krippendorff_alpha(data, level), 3) == expected


def test_string_labels() -> None:
    a, b = ["x", "y", "y", "z"], ["x", "y", "z", "z"]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=TOL)
    assert fleiss_kappa(np.array([a, b]).T) == pytest.approx(
        sm_fleiss_kappa(aggregate_raters(np.array([a, b]).T)[0]), abs=TOL
    )


def test_correlation_perfect_and_reversed() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    for f in (pearson, spearman, kendall_tau):
        assert f(x, 2 * x + 1) == pytest.approx(1.0)
        assert f(x, -x) == pytest.approx(-1.0)


# --- Degenerate inputs -----------------------------------------------------------------------


def test_kappa_both_raters_one_identical_label_is_one() -> None:
    a = b = np.ones(5, dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(cohen_kappa_score(a, b))  # sklearn: undefined; our documented choice: 1.0
    for w in (None, "linear", "quadratic"):
        assert cohen_kappa(a, b, weights=w) == 1.0
        assert cohen_kappa(a, b, labels=[0, 1, 2], weights=w) == 1.0


def test_kappa_one_rater_constant_is_zero() -> None:
    a, b = [0, 1, 0, 1, 1], [1, 1, 1, 1, 1]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b)) == 0.0


def test_kappa_perfect_agreement_is_one() -> None:
    a = [0, 1, 2, 2, 1]
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(a, a, weights="quadratic") == 1.0


@pytest.mark.parametrize(
    ("a", "b", "labels", "message"),
    [
        ([], [], None, "empty"),
        ([0, 1], [0], None, "length"),
        ([0.0, np.nan], [0.0, 1.0], None, "NaN"),
        ([0, 3], [0, 1], [0, 1], "not in labels"),
        ([0, 1], [0, 1], [0, 1, 1], "duplicates"),
        ([[0, 1]], [[0, 1]], None, "1-D"),
    ],
)
def test_pairwise_label_errors(a: list, b: list, labels: list | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cohen_kappa(a, b, labels)


def test_kappa_bad_weights() -> None:
    with pytest.raises(ValueError, match="weights"):
        cohen_kappa([0, 1], [0, 1], weights="cubic")  # type: ignore[arg-type]


def test_accuracy_empty() -> None:
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])


def test_fleiss_degenerate() -> None:
    assert fleiss_kappa(np.full((4, 3), 2)) == 1.0
    assert fleiss_kappa(np.array([[0, 0], [1, 1], [2, 2]])) == 1.0
    with pytest.raises(ValueError, match="NaN"):
        fleiss_kappa(np.array([[0.0, 1.0], [1.0, np.nan]]))
    with pytest.raises(ValueError, match="2 raters"):
        fleiss_kappa(np.array([[0], [1]]))
    with pytest.raises(ValueError, match="empty"):
        fleiss_kappa(np.empty((0, 3)))
    with pytest.raises(ValueError, match="2-D"):
        fleiss_kappa(np.array([0, 1, 1]))


def test_alpha_degenerate() -> None:
    n = np.nan
    assert krippendorff_alpha(np.full((3, 5), 4.0), "interval") == 1.0
    assert krippendorff_alpha(np.array([[1, 2, 3], [1, 2, 3]]), "ordinal") == 1.0
    # The only variation sits in an unpairable item: still no expected disagreement.
    assert krippendorff_alpha(np.array([[1, 1, 5], [1, 1, n]])) == 1.0
    with pytest.raises(ValueError, match="two or more ratings"):
        krippendorff_alpha(np.array([[1, n], [n, 2]]))
    with pytest.raises(ValueError, match="two or more ratings"):
        krippendorff_alpha(np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="non-negative"):
        krippendorff_alpha(np.array([[-1, 2], [1, 2]]), "ratio")
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha(np.array([[1, 2], [1, 2]]), "cardinal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2-D"):
        krippendorff_alpha(np.array([1, 2, 3]))


@pytest.mark.parametrize("f", [pearson, spearman, kendall_tau])
def test_correlation_degenerate(f: Callable[[ArrayLike, ArrayLike], float]) -> None:
    with pytest.raises(ValueError, match="constant"):
        f([1, 2, 3], [4, 4, 4])
    with pytest.raises(ValueError, match="constant"):
        f([2, 2, 2], [2, 2, 2])  # all ties
    with pytest.raises(ValueError, match="at least 2"):
        f([1], [2])
    with pytest.raises(ValueError, match="at least 2"):
        f([], [])
    with pytest.raises(ValueError, match="NaN"):
        f([1, np.nan, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="length"):
        f([1, 2, 3], [1, 2])


# --- human_ceiling ---------------------------------------------------------------------------


def _loo_by_hand(ann: np.ndarray, judge: np.ndarray, kappa_kwargs: dict) -> tuple[list, list]:
    humans, judges = [], []
    for r in range(ann.shape[1]):
        others = _majority(np.delete(ann, r, axis=1))
        keep = ~np.isnan(others) & ~np.isnan(ann[:, r]) & ~np.isnan(judge)
        humans.append(cohen_kappa_score(ann[keep, r], others[keep], **kappa_kwargs))
        judges.append(cohen_kappa_score(judge[keep], others[keep], **kappa_kwargs))
    return humans, judges


def test_human_ceiling_majority_judge_beats_humans(pandalm: np.ndarray) -> None:
    ann = pandalm.astype(float)
    judge = _majority(ann)
    n_ties = int(np.isnan(judge).sum())
    report = human_ceiling(ann, judge, kind="categorical")
    assert isinstance(report, HumanCeiling)
    assert report.judge_vs_human_ratio > 1.0
    assert report.judge_vs_consensus == 1.0
    assert report.n_consensus_ties_dropped == n_ties
    assert report.n_consensus_items == ann.shape[0] - n_ties
    humans, judges = _loo_by_hand(ann, judge, {})
    np.testing.assert_allclose(report.loo_human, humans, atol=TOL)
    np.testing.assert_allclose(report.loo_judge, judges, atol=TOL)
    assert report.mean_loo_human == pytest.approx(np.mean(humans), abs=TOL)
    assert report.judge_vs_human_ratio == pytest.approx(np.mean(judges) / np.mean(humans))
    pairs = list(combinations(range(3), 2))
    assert report.annotator_pairs == tuple(pairs)
    ref_pairs = [cohen_kappa_score(ann[:, i], ann[:, j]) for i, j in pairs]
    np.testing.assert_allclose(report.pairwise_annotator, ref_pairs, atol=TOL)
    assert report.mean_pairwise_annotator == pytest.approx(0.864, abs=1e-3)
    both = ~np.isnan(judge)
    ref_each = [cohen_kappa_score(judge[both], ann[both, r]) for r in range(3)]
    np.testing.assert_allclose(report.judge_vs_annotator, ref_each, atol=TOL)


def test_human_ceiling_noisy_judge_falls_short(pandalm: np.ndarray) -> None:
    ann = pandalm.astype(float)
    rng = np.random.default_rng(2024)
    judge = _majority(ann)
    judge = np.where(np.isnan(judge), 0.0, judge)  # a judge always answers
    noisy = rng.random(judge.size) < 0.4
    judge[noisy] = rng.integers(0, 3, noisy.sum())
    report = human_ceiling(ann, judge, kind="categorical")
    assert report.judge_vs_human_ratio < 1.0
    humans, judges = _loo_by_hand(ann, judge, {})
    np.testing.assert_allclose(report.loo_human, humans, atol=TOL)
    np.testing.assert_allclose(report.loo_judge, judges, atol=TOL)
    assert report.loo_n_items == tuple(
        int((~np.isnan(_majority(np.delete(ann, r, axis=1)))).sum()) for r in range(3)
    )


def test_human_ceiling_missing_values(pandalm: np.ndarray) -> None:
    ann = _with_missing(pandalm, 0.2, seed=3)
    judge = pandalm[:, 0].astype(float)
    judge[:50] = np.nan  # unparseable verdicts are left out of judge comparisons
    report = human_ceiling(ann, judge, kind="categorical")
    i, j = 0, 2
    both = ~np.isnan(ann[:, i]) & ~np.isnan(ann[:, j])
    k = report.annotator_pairs.index((i, j))
    assert report.pairwise_annotator[k] == pytest.approx(
        cohen_kappa_score(ann[both, i], ann[both, j]), abs=TOL
    )
    humans, judges = _loo_by_hand(ann, judge, {})
    np.testing.assert_allclose(report.loo_human, humans, atol=TOL)
    np.testing.assert_allclose(report.loo_judge, judges, atol=TOL)


def test_human_ceiling_ordinal_newsroom(newsroom: dict[str, np.ndarray]) -> None:
    ann = newsroom["Coherence"]
    judge = np.clip(np.round(ann.mean(axis=1)), 1, 5)
    report = human_ceiling(ann, judge, kind="ordinal", labels=[1, 2, 3, 4, 5])
    assert report.metric == "quadratic-weighted kappa"
    kw = {"labels": [1, 2, 3, 4, 5], "weights": "quadratic"}
    humans, judges = _loo_by_hand(ann, judge, kw)
    np.testing.assert_allclose(report.loo_human, humans, atol=TOL)
    np.testing.assert_allclose(report.loo_judge, judges, atol=TOL)


def test_human_ceiling_interval_newsroom(newsroom: dict[str, np.ndarray]) -> None:
    ann = newsroom["Informativeness"]
    rng = np.random.default_rng(5)
    judge = ann.mean(axis=1) + rng.normal(0, 0.3, ann.shape[0])
    report = human_ceiling(ann, judge, kind="interval")
    assert report.metric == "pearson"
    for r in range(3):
        others = np.delete(ann, r, axis=1).mean(axis=1)
        assert report.loo_human[r] == pytest.approx(np.corrcoef(ann[:, r], others)[0, 1], abs=TOL)
        assert report.loo_judge[r] == pytest.approx(np.corrcoef(judge, others)[0, 1], abs=TOL)
    assert report.judge_vs_consensus == pytest.approx(
        np.corrcoef(judge, ann.mean(axis=1))[0, 1], abs=TOL
    )
    assert report.n_consensus_ties_dropped == 0
    assert report.judge_vs_human_ratio > 1.0  # the judge sees the mean of all three raters


def test_human_ceiling_errors() -> None:
    ann = np.array([[0, 1], [1, 1], [0, 0], [1, 0]], dtype=float)
    with pytest.raises(ValueError, match="at least 2 annotators"):
        human_ceiling(ann[:, :1], ann[:, 0], kind="categorical")
    with pytest.raises(ValueError, match="one value per item"):
        human_ceiling(ann, ann[:3, 0], kind="categorical")
    with pytest.raises(ValueError, match="kind"):
        human_ceiling(ann, ann[:, 0], kind="nominal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not in labels"):
        human_ceiling(ann, ann[:, 0], kind="categorical", labels=[0])
    with pytest.raises(ValueError, match="empty"):
        human_ceiling(np.empty((0, 2)), np.empty(0), kind="categorical")
    # Two annotators who agree only at chance: the ratio would be meaningless.
    with pytest.raises(ValueError, match="meaningless"):
        human_ceiling(ann, ann[:, 0], kind="categorical")
    with pytest.raises(ValueError, match="annotators 0 and 1: constant"):
        human_ceiling(np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]]), np.ones(3), kind="interval")
