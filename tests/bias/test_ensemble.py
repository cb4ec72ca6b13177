"""Prompt-variant ensembles: exact aggregation, invalid handling, planted variance components."""

from __future__ import annotations

import numpy as np
import pytest

from judgekit.bias.ensemble import (
    aggregate_variants,
    valid_variant_counts,
    variance_decomposition,
    variant_agreement,
)

NAN = [np.nan, np.nan, np.nan]

# 4 items x 3 variants x 3 labels; item 1 has one invalid variant, item 3 has none valid.
PROBS = np.array(
    [
        [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.7, 0.2, 0.1]],
        [[0.1, 0.8, 0.1], NAN, [0.5, 0.4, 0.1]],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        [NAN, NAN, NAN],
    ]
)


def test_valid_variant_counts() -> None:
    np.testing.assert_array_equal(valid_variant_counts(PROBS), [3, 2, 3, 0])


def test_mean_skips_invalid_variants() -> None:
    out = aggregate_variants(PROBS, "mean")
    np.testing.assert_allclose(out[0], [0.5, 1 / 3, 0.5 / 3])
    np.testing.assert_allclose(out[1], [0.3, 0.6, 0.1])  # the NaN variant is not a zero vote
    np.testing.assert_allclose(out[2], [1 / 3] * 3)
    assert np.isnan(out[3]).all()
    assert int(np.isnan(out).any(axis=1).sum()) == 1


def test_majority_vote_and_tie_break_by_mean() -> None:
    out = aggregate_variants(PROBS, "majority")
    np.testing.assert_array_equal(out[0], [1.0, 0.0, 0.0])  # votes A, B, A
    # Votes B and A (one each): the mean [0.3, 0.6, 0.1] breaks the tie for B.
    np.testing.assert_array_equal(out[1], [0.0, 1.0, 0.0])
    # Three-way vote tie with an exactly flat mean: a tie, not a win for the first label.
    np.testing.assert_array_equal(out[2], [1 / 3, 1 / 3, 1 / 3])
    assert np.isnan(out[3]).all()


def test_median_renormalised_with_mean_fallback() -> None:
    out = aggregate_variants(PROBS, "median")
    med0 = np.array([0.6, 0.3, 0.1])
    np.testing.assert_allclose(out[0], med0 / med0.sum())
    np.testing.assert_allclose(out[1], [0.3, 0.6, 0.1])  # median of two = their mean
    np.testing.assert_allclose(out[2], [1 / 3] * 3)  # all medians 0 -> mean
    assert np.isnan(out[3]).all()
    np.testing.assert_allclose(np.nansum(out, axis=1)[:3], 1.0)


def test_aggregate_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        aggregate_variants(PROBS[0])
    with pytest.raises(ValueError):
        aggregate_variants(PROBS, "mode")  # type: ignore[arg-type]


def test_exactly_additive_scores() -> None:
    item = np.array([1.0, 2.5, 4.0, 0.5])
    variant = np.array([0.0, 0.3, -0.6])
    dec = variance_decomposition(item[:, None] + variant[None, :])
    assert dec.item_var == pytest.approx(np.var(item, ddof=1))
    assert dec.variant_var == pytest.approx(np.var(variant, ddof=1))
    assert dec.residual_var == pytest.approx(0.0, abs=1e-12)
    assert dec.truncated == ()


def test_recovers_planted_components() -> None:
    rng = np.random.default_rng(0)
    n, v = 4000, 6
    sd_item, sd_variant, sd_resid = 1.0, 0.5, 0.7
    a = rng.normal(0, sd_item, n)
    b = rng.normal(0, sd_variant, v)
    scores = 3.0 + a[:, None] + b[None, :] + rng.normal(0, sd_resid, (n, v))
    scores[:25, 2] = np.nan  # invalid verdicts: the items are dropped and counted
    dec = variance_decomposition(scores)
    assert (dec.n_items, dec.n_variants, dec.n_dropped) == (n - 25, v, 25)
    assert dec.item_var == pytest.approx(sd_item**2, abs=0.06)
    assert dec.residual_var == pytest.approx(sd_resid**2, abs=0.015)
    # With 6 variants the estimable quantity is the realised spread of their effects.
    assert dec.variant_var == pytest.approx(np.var(b, ddof=1), abs=0.01)
    assert dec.item_share + dec.variant_share + dec.residual_share == pytest.approx(1.0)
    assert dec.truncated == ()


def test_negative_component_truncated_and_flagged() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(0, 1, (200, 4)) + rng.normal(0, 1, 200)[:, None]
    scores -= scores.mean(axis=0) - scores.mean()  # identical variant means: MS_variant = 0
    dec = variance_decomposition(scores)
    assert dec.variant_var == 0.0 and dec.variant_share == 0.0
    assert dec.truncated == ("variant",)
    assert dec.item_share + dec.residual_share == pytest.approx(1.0)


def test_decomposition_needs_two_by_two() -> None:
    with pytest.raises(ValueError):
        variance_decomposition(np.array([[1.0, 2.0], [np.nan, 3.0]]))


def test_variant_agreement_uses_variants_as_raters() -> None:
    agreement = pytest.importorskip("judgekit.stats.agreement")
    labels = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [1, 1, 1]], dtype=float)
    assert variant_agreement(labels, "nominal") == pytest.approx(1.0)

    rng = np.random.default_rng(2)
    scores = rng.integers(1, 6, size=(30, 4)).astype(float)
    scores[3, 1] = np.nan
    expected = agreement.krippendorff_alpha(scores.T, "ordinal")
    assert variant_agreement(scores, "ordinal") == pytest.approx(expected)
    assert variant_agreement(scores, "ordinal") < 0.3  # random verdicts: wording dominates
