"""Edge inputs the agreement functions used to get silently wrong (issue 11, item 12)."""

from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import cohen_kappa_score

from judgekit.stats import cohen_kappa, fleiss_kappa, krippendorff_alpha, pearson, spearman


@pytest.mark.parametrize(
    ("a", "message"),
    [
        (["x", float("nan"), "y"], "NaN in labels"),  # was the category "nan"
        (["x", None, "y"], "None in labels"),  # was a TypeError inside numpy
        (pd.Series(["x", None, "y"]), "(None|NaN) in labels"),
        ([1, "2", 3], "mix text and numbers"),  # was kappa 1.0 against [1, 2, 3]
    ],
)
def test_bad_labels_raise_a_named_value_error(a: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cohen_kappa(a, ["x", "y", "y"] if message != "mix text and numbers" else [1, 2, 3])


def test_text_against_numbers_is_refused() -> None:
    with pytest.raises(ValueError, match="mix text and numbers"):
        cohen_kappa(["1", "2", "3"], [1, 2, 3])
    with pytest.raises(ValueError, match=r"None in labels.*krippendorff_alpha"):
        fleiss_kappa([["a", "b"], ["a", None]])


def test_clean_lists_still_match_sklearn() -> None:
    a, b = ["x", "y", "y", "z", "x"], ["x", "y", "z", "z", "y"]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-15)
    assert cohen_kappa(pd.Series(a, dtype=object), b) == pytest.approx(cohen_kappa_score(a, b))
    assert fleiss_kappa([["a", "b"], ["a", "a"], ["b", "b"]]) == pytest.approx(
        fleiss_kappa(np.array([[0, 1], [0, 0], [1, 1]]))
    )


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e300])
def test_pearson_is_scale_free_at_extreme_scales(scale: float) -> None:
    """Was 0.0 at 1e200 (overflow to inf) and -1.0 at 1e300 (NaN clipped)."""
    x, y = np.array([1.0, 2.0, 3.0, 5.0]), np.array([1.0, 2.0, 4.0, 4.5])
    expected = sps.pearsonr(x, y).statistic
    assert pearson(x * scale, y) == pytest.approx(expected, abs=1e-12)
    assert pearson(x * scale, y * scale) == pytest.approx(expected, abs=1e-12)
    assert spearman(x * scale, y) == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_interval_alpha_is_scale_free_at_extreme_scales(scale: float) -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=40)
    ratings = truth + rng.normal(scale=0.5, size=(3, 40))
    ratings[0, :5] = np.nan
    expected = krippendorff.alpha(reliability_data=ratings, level_of_measurement="interval")
    assert krippendorff_alpha(ratings, "interval") == pytest.approx(expected, abs=1e-12)
    assert krippendorff_alpha(ratings * scale, "interval") == pytest.approx(expected, abs=1e-12)
