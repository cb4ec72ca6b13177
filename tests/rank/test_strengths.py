"""The vectorised, warm-started bootstrap equals refitting each resampled data set on its own."""

from __future__ import annotations

import numpy as np
import pytest

from judgekit.rank import (
    Battles,
    cluster_counts,
    counts_from_indices,
    fit_strengths,
    simulate_battles,
)


def _resampled(battles: Battles, questions: np.ndarray) -> Battles:
    """The battles of the drawn questions, a question drawn k times appearing k times."""
    rows = np.concatenate([np.flatnonzero(battles.question == q) for q in questions])
    names = np.asarray(battles.models, object)
    return Battles.build(
        [str(i) for i, q in enumerate(questions) for _ in np.flatnonzero(battles.question == q)],
        names[battles.model_a[rows]],
        names[battles.model_b[rows]],
        battles.outcome[rows],
        features=None if battles.features is None else battles.features[rows],
        feature_names=battles.feature_names,
    )


@pytest.mark.parametrize("ties", ["half", "davidson"])
def test_question_bootstrap_equals_refitting_each_resample(ties: str) -> None:
    rng = np.random.default_rng(0)
    battles = simulate_battles(rng.normal(size=5), 30, rng)
    draws = rng.integers(0, 30, size=(6, 30))
    fast = fit_strengths(battles, ties=ties, counts=counts_from_indices(draws, 30))
    for k, questions in enumerate(draws):
        alone = fit_strengths(_resampled(battles, questions), ties=ties, n_resamples=1, rng=rng)
        np.testing.assert_allclose(fast.boot[k], alone.theta, atol=1e-9)


def test_style_bootstrap_equals_refitting_each_resample() -> None:
    rng = np.random.default_rng(1)
    battles = simulate_battles(rng.normal(size=4), 25, rng)
    raw = rng.normal(size=(len(battles), 2))
    battles = battles.with_features(raw, ("length", "bold"))
    draws = rng.integers(0, 25, size=(4, 25))
    fast = fit_strengths(battles, style=True, counts=counts_from_indices(draws, 25))
    for k, questions in enumerate(draws):
        alone = fit_strengths(_resampled(battles, questions), style=True, n_resamples=1, rng=rng)
        np.testing.assert_allclose(fast.boot[k], alone.theta, atol=1e-9)
        np.testing.assert_allclose(fast.boot_gamma[k], alone.gamma, atol=1e-9)


def test_battle_unit_resamples_rows() -> None:
    rng = np.random.default_rng(2)
    battles = simulate_battles(rng.normal(size=4), 10, rng)
    draws = rng.integers(0, len(battles), size=(3, len(battles)))
    fast = fit_strengths(battles, unit="battle", counts=counts_from_indices(draws, len(battles)))
    names = np.asarray(battles.models, object)
    for k, rows in enumerate(draws):
        alone = Battles.build(
            [str(i) for i in range(rows.size)],
            names[battles.model_a[rows]],
            names[battles.model_b[rows]],
            battles.outcome[rows],
        )
        theta = fit_strengths(alone, n_resamples=1, rng=rng).theta
        np.testing.assert_allclose(fast.boot[k], theta, atol=1e-9)


def test_counts_are_multinomial_draws_of_all_clusters() -> None:
    counts = cluster_counts(50, 200, np.random.default_rng(3))
    assert counts.shape == (200, 50)
    assert (counts.sum(axis=1) == 50).all()
    draws = np.array([[0, 0, 2], [1, 2, 2]])
    np.testing.assert_array_equal(counts_from_indices(draws, 3), [[2, 0, 1], [0, 1, 2]])


def test_invalid_battles_are_not_fitted() -> None:
    rng = np.random.default_rng(4)
    battles = simulate_battles(rng.normal(size=3), 20, rng)
    outcome = battles.outcome.copy()
    outcome[::7] = np.nan
    names = np.asarray(battles.models, object)
    with_invalid = Battles.build(
        np.asarray(battles.questions, object)[battles.question],
        names[battles.model_a],
        names[battles.model_b],
        outcome,
    )
    kept = with_invalid.subset(with_invalid.valid)
    a = fit_strengths(with_invalid, n_resamples=1, rng=rng).theta
    b = fit_strengths(kept, n_resamples=1, rng=rng).theta
    np.testing.assert_allclose(a, b, atol=1e-12)
    counts = with_invalid.per_model_counts()
    assert counts["n_invalid"].sum() == 2 * int(np.isnan(outcome).sum())


@pytest.mark.parametrize("style", [False, True])
def test_a_resample_without_some_model_is_counted_failed(style: bool) -> None:
    rng = np.random.default_rng(5)
    base = simulate_battles(np.array([0.0, 0.5]), 20, rng)
    names = np.asarray(base.models, object)
    question = [*np.asarray(base.questions, object)[base.question], "19", "19"]
    battles = Battles.build(
        question,
        [*names[base.model_a], "m02", "m00"],
        [*names[base.model_b], "m00", "m02"],
        [*base.outcome, 1.0, 0.5],
    )
    if style:
        battles = battles.with_features(rng.normal(size=(len(battles), 1)), ("length",))
    counts = np.ones((3, 20), dtype=int)
    counts[1, battles.questions.index("19")] = 0  # this resample never sees m02
    counts[1, 0] += 1
    fit = fit_strengths(battles, style=style, prior=0.1, counts=counts)
    assert np.isnan(fit.boot[1]).all() and not np.isnan(fit.boot[[0, 2]]).any()
    assert fit.n_failed == 1
