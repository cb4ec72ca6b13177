"""Confidence intervals: determinism, coverage, BCa vs percentile and scipy, failure counting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from judgekit.stats import (
    ConfidenceInterval,
    accuracy,
    bootstrap_ci,
    bootstrap_ci_2d,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    mean_ci,
    pearson,
    proportion_ci,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def pandalm() -> np.ndarray:
    """PandaLM test set: 999 items x 3 annotators, labels 0=tie, 1, 2."""
    path = DATA / "pandalm" / "testset-v1.json"
    if not path.exists():
        pytest.skip(f"shared data file {path} not found (expected ../shared/data next to the repo)")
    rows = json.loads(path.read_text(encoding="utf-8"))
    return np.array([[r["annotator1"], r["annotator2"], r["annotator3"]] for r in rows])


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x))


# --- bootstrap_ci ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_same_seed_same_interval(pandalm: np.ndarray, method: str) -> None:
    a, b = pandalm[:, 0], pandalm[:, 1]
    kw = {"n_resamples": 300, "method": method}
    first = bootstrap_ci(cohen_kappa, a, b, rng=np.random.default_rng(1), **kw)
    again = bootstrap_ci(cohen_kappa, a, b, rng=np.random.default_rng(1), **kw)
    other = bootstrap_ci(cohen_kappa, a, b, rng=np.random.default_rng(2), **kw)
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)
    assert first.method == method
    assert first.estimate == cohen_kappa(a, b)
    assert first.low < first.estimate < first.high
    assert first.n_failed == 0


def test_paired_resampling_keeps_rows_together() -> None:
    # a == b item by item, so any paired resample agrees perfectly; unpaired ones would not.
    a = np.arange(30) % 3
    ci = bootstrap_ci(accuracy, a, a.copy(), rng=np.random.default_rng(0), n_resamples=200)
    assert (ci.low, ci.high) == (1.0, 1.0)
    assert ci.method == "percentile (bca undefined: all resamples equal)"


def test_two_dimensional_items_x_raters(pandalm: np.ndarray) -> None:
    ci = bootstrap_ci(fleiss_kappa, pandalm, rng=np.random.default_rng(3), n_resamples=300)
    assert ci.estimate == pytest.approx(0.864, abs=1e-3)
    assert ci.low < ci.estimate < ci.high
    assert 0.01 < ci.high - ci.low < 0.1


def test_percentile_coverage_on_simulated_mean() -> None:
    rng = np.random.default_rng(12345)
    hits, trials = 0, 200
    for _ in range(trials):
        x = rng.normal(0.0, 1.0, 60)
        ci = bootstrap_ci(_mean, x, rng=rng, n_resamples=400, method="percentile")
        hits += ci.low <= 0.0 <= ci.high
    assert 0.88 <= hits / trials <= 0.99


def test_bca_close_to_percentile_when_symmetric() -> None:
    x = np.random.default_rng(8).normal(10.0, 2.0, 300)
    bca = bootstrap_ci(_mean, x, rng=np.random.default_rng(9), method="bca")
    pct = bootstrap_ci(_mean, x, rng=np.random.default_rng(9), method="percentile")
    width = pct.high - pct.low
    assert bca.method == "bca"
    assert abs(bca.low - pct.low) < 0.1 * width
    assert abs(bca.high - pct.high) < 0.1 * width


def test_bca_matches_scipy_on_skewed_data() -> None:
    x = np.random.default_rng(4).exponential(1.0, 80)
    ours = bootstrap_ci(_mean, x, rng=np.random.default_rng(5), n_resamples=4000)
    ref = sps.bootstrap(
        (x,), np.mean, n_resamples=4000, method="BCa", rng=np.random.default_rng(6)
    ).confidence_interval
    width = ref.high - ref.low
    assert abs(ours.low - ref.low) < 0.05 * width
    assert abs(ours.high - ref.high) < 0.05 * width
    # BCa shifts right of the percentile interval for a right-skewed mean.
    pct = bootstrap_ci(
        _mean, x, rng=np.random.default_rng(5), n_resamples=4000, method="percentile"
    )
    assert ours.high > pct.high


def test_failed_resamples_are_counted() -> None:
    n, n_resamples, seed = 20, 500, 77
    x = np.arange(n, dtype=float)

    def needs_item_zero(v: np.ndarray) -> float:
        if v.min() > 0:
            raise ValueError("item 0 missing")
        if v.max() < 10:
            return float("nan")  # non-finite counts as failed too
        return float(v.mean())

    ci = bootstrap_ci(
        needs_item_zero,
        x,
        rng=np.random.default_rng(seed),
        n_resamples=n_resamples,
        method="percentile",
    )
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    expected = int(np.sum((idx.min(axis=1) > 0) | (idx.max(axis=1) < 10)))
    assert 0 < expected < n_resamples // 2
    assert ci.n_failed == expected
    assert ci.n_resamples == n_resamples


def test_mostly_failing_statistic_raises() -> None:
    def distinct_only(v: np.ndarray) -> float:
        if np.unique(v).size < v.size:  # almost every resample repeats an item
            raise ValueError("repeated item")
        return float(v.mean())

    with pytest.raises(ValueError, match="> 50%"):
        bootstrap_ci(distinct_only, np.arange(20.0), rng=np.random.default_rng(0), n_resamples=200)


def test_bca_falls_back_when_jackknife_undefined() -> None:
    x = np.arange(10, dtype=float)

    def needs_item_zero(v: np.ndarray) -> float:
        if v.min() > 0:
            raise ValueError("item 0 missing")
        return float(v.mean())

    ci = bootstrap_ci(needs_item_zero, x, rng=np.random.default_rng(0), n_resamples=300)
    assert ci.method == "percentile (bca undefined: statistic undefined on a leave-one-out sample)"
    assert ci.n_failed > 0


def test_undefined_on_original_data_raises() -> None:
    with pytest.raises(ValueError, match="constant"):
        bootstrap_ci(pearson, np.ones(5), np.arange(5.0), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="not finite"):
        bootstrap_ci(lambda v: float("nan"), np.arange(5.0), rng=np.random.default_rng(0))


def test_kappa_degenerate_resamples_are_not_failures() -> None:
    # Tiny, nearly constant data: many resamples contain one label only; kappa defines them.
    a = np.array([1, 1, 1, 1, 1, 1, 1, 0])
    ci = bootstrap_ci(cohen_kappa, a, a.copy(), rng=np.random.default_rng(0), n_resamples=200)
    assert ci.n_failed == 0
    assert (ci.low, ci.high) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "at least one array"),
        ((np.arange(5), np.arange(4)), {}, "first"),
        ((np.arange(1),), {}, "at least 2 items"),
        ((np.arange(5),), {"n_resamples": 0}, "n_resamples"),
        ((np.arange(5),), {"level": 1.0}, "level"),
        ((np.arange(5),), {"method": "basic"}, "method"),
    ],
)
def test_bootstrap_ci_input_errors(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_ci(_mean, *args, rng=np.random.default_rng(0), **kwargs)


# --- bootstrap_ci_2d ---------------------------------------------------------------------------


@pytest.mark.parametrize("resample_raters", [False, True])
def test_bootstrap_ci_2d_alpha(pandalm: np.ndarray, resample_raters: bool) -> None:
    data = pandalm.T.astype(float)
    kw = {"n_resamples": 200, "resample_raters": resample_raters}
    ci = bootstrap_ci_2d(krippendorff_alpha, data, rng=np.random.default_rng(10), **kw)
    again = bootstrap_ci_2d(krippendorff_alpha, data, rng=np.random.default_rng(10), **kw)
    assert ci == again
    assert ci.estimate == krippendorff_alpha(data)
    assert ci.low < ci.estimate <= ci.high
    assert ci.method == "percentile"


def test_bootstrap_ci_2d_rater_resampling_widens() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 1, 200)
    bias = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 0.2])[:, None]
    data = truth + bias + rng.normal(0, 0.5, (6, 200))
    items = bootstrap_ci_2d(
        lambda r: krippendorff_alpha(r, "interval"),
        data,
        rng=np.random.default_rng(1),
        n_resamples=300,
        resample_raters=False,
    )
    both = bootstrap_ci_2d(
        lambda r: krippendorff_alpha(r, "interval"),
        data,
        rng=np.random.default_rng(1),
        n_resamples=300,
        resample_raters=True,
    )
    assert both.high - both.low > items.high - items.low


def test_bootstrap_ci_2d_counts_failures() -> None:
    # Only items 0 and 1 have two ratings; a resample holding neither has no pairable item.
    data = np.full((2, 20), np.nan)
    data[:, 0], data[:, 1] = [1, 2], [1, 3]
    ci = bootstrap_ci_2d(
        krippendorff_alpha,
        data,
        rng=np.random.default_rng(0),
        n_resamples=500,
        resample_raters=False,
    )
    cols = np.random.default_rng(0).integers(0, 20, size=(500, 20))
    expected = int(np.sum(~np.isin(cols, [0, 1]).any(axis=1)))
    assert 0 < expected < 250
    assert ci.n_failed == expected


def test_bootstrap_ci_2d_errors() -> None:
    with pytest.raises(ValueError, match="2-D"):
        bootstrap_ci_2d(krippendorff_alpha, np.arange(5.0), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 2 raters"):
        bootstrap_ci_2d(krippendorff_alpha, np.ones((1, 5)), rng=np.random.default_rng(0))


# --- analytic intervals ------------------------------------------------------------------------


def test_mean_ci_matches_scipy_t_interval() -> None:
    x = np.random.default_rng(0).normal(3.0, 1.5, 40)
    ci = mean_ci(x, level=0.9)
    low, high = sps.t.interval(0.9, x.size - 1, loc=x.mean(), scale=sps.sem(x))
    assert (ci.low, ci.high) == pytest.approx((low, high), abs=1e-12)
    assert ci.estimate == pytest.approx(x.mean())
    assert (ci.method, ci.level, ci.n_resamples, ci.n_failed) == ("t", 0.9, 0, 0)


def test_mean_ci_coverage() -> None:
    rng = np.random.default_rng(99)
    draws = rng.normal(1.0, 2.0, (2000, 15))
    hits = sum(ci.low <= 1.0 <= ci.high for ci in map(mean_ci, draws))
    assert 0.93 <= hits / 2000 <= 0.97


def test_mean_ci_degenerate() -> None:
    ci = mean_ci([2.0, 2.0, 2.0])
    assert (ci.estimate, ci.low, ci.high) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="at least 2"):
        mean_ci([1.0])
    with pytest.raises(ValueError, match="NaN"):
        mean_ci([1.0, np.nan])
    with pytest.raises(ValueError, match="level"):
        mean_ci([1.0, 2.0], level=0.0)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (1, 1), (517, 999)])
def test_proportion_ci_matches_statsmodels_wilson(k: int, n: int) -> None:
    ci = proportion_ci(k, n, level=0.95)
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert (ci.low, ci.high) == pytest.approx((low, high), abs=1e-12)
    assert ci.estimate == k / n
    assert 0.0 <= ci.low <= ci.estimate <= ci.high <= 1.0
    assert isinstance(ci, ConfidenceInterval) and ci.method == "wilson"


def test_proportion_ci_edges_and_errors() -> None:
    assert proportion_ci(0, 20).low == 0.0
    assert proportion_ci(20, 20).high == 1.0
    with pytest.raises(ValueError, match="n must be positive"):
        proportion_ci(0, 0)
    with pytest.raises(ValueError, match="k must be"):
        proportion_ci(5, 4)
    with pytest.raises(ValueError, match="k must be"):
        proportion_ci(-1, 4)
    with pytest.raises(ValueError, match="level"):
        proportion_ci(1, 4, level=1.5)
