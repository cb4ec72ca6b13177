"""Bradley-Terry fits against choix, arena-rank, closed forms and a generic optimiser.

References (test-only dependencies): choix (Luce/Bradley-Terry inference), arena-rank
(LMArena's rating library, JAX), scipy.optimize.
"""

from __future__ import annotations

import choix
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import log_expit, logit

from judgekit.rank import Battles, fit_pairs, fit_strengths, simulate_battles

TOL = 1e-6


def _pairs(m: int) -> np.ndarray:
    return np.array([(i, j) for i in range(m) for j in range(i + 1, m)])


def _stats(rng: np.random.Generator, m: int, n_res: int = 1) -> np.ndarray:
    """Random (A wins, ties, B wins) counts for every pair of ``m`` models."""
    return rng.integers(1, 25, size=(n_res, len(_pairs(m)), 3)).astype(float)


def test_half_ties_match_choix_with_fractional_wins() -> None:
    rng = np.random.default_rng(0)
    m = 7
    pairs, stats = _pairs(m), _stats(rng, m)
    comp = np.zeros((m, m))
    for (i, j), (a, t, b) in zip(pairs, stats[0], strict=True):
        comp[i, j] += a + t / 2
        comp[j, i] += b + t / 2
    reference = choix.ilsr_pairwise_dense(comp, tol=1e-14, max_iter=10_000)
    theta = fit_pairs(stats, pairs, m).theta[0]
    np.testing.assert_allclose(theta - theta.mean(), reference, atol=1e-10)


def test_matches_arena_rank_bradley_terry() -> None:
    arena = pytest.importorskip("arena_rank.models.bradley_terry")
    data = pytest.importorskip("arena_rank.utils.data_utils")
    rng = np.random.default_rng(1)
    battles = simulate_battles(rng.normal(size=6), 40, rng)
    winner = np.select([battles.outcome == 1, battles.outcome == 0], ["model_a", "model_b"], "tie")
    names = np.array(battles.models)
    frame = pd.DataFrame(
        {"model_a": names[battles.model_a], "model_b": names[battles.model_b], "winner": winner}
    )
    dataset = data.PairDataset.from_pandas(frame)
    model = arena.BradleyTerry(len(dataset.competitors), ftol=1e-15, gtol=1e-12, max_iter=5000)
    model.fit(dataset)
    reference = np.asarray(model.params["ratings"])
    order = [dataset.competitors.index(name) for name in battles.models]
    theta = fit_strengths(battles, n_resamples=1, rng=rng).theta
    np.testing.assert_allclose(theta - theta.mean(), reference[order] - reference.mean(), atol=TOL)


@pytest.mark.parametrize("ties", ["davidson", "rao-kupper"])
def test_tie_models_reach_the_saturated_two_player_solution(ties: str) -> None:
    wins, draws, losses = 7.0, 3.0, 5.0
    fit = fit_pairs(np.array([[[wins, draws, losses]]]), np.array([[0, 1]]), 2, ties=ties)
    d = fit.theta[0, 0] - fit.theta[0, 1]
    n = wins + draws + losses
    if ties == "davidson":  # P(A)/P(B) = pi_a/pi_b and P(tie) = nu sqrt(P(A) P(B))
        assert d == pytest.approx(np.log(wins / losses), abs=1e-12)
        assert np.exp(fit.extra[0]) == pytest.approx(draws / np.sqrt(wins * losses), abs=1e-12)
    else:  # logit P(A) = d - eta, logit P(B) = -d - eta
        pa, pb = wins / n, losses / n
        assert d == pytest.approx((logit(pa) - logit(pb)) / 2, abs=1e-12)
        assert fit.extra[0] == pytest.approx(-(logit(pa) + logit(pb)) / 2, abs=1e-12)


def _neg_loglik(x: np.ndarray, stats: np.ndarray, pairs: np.ndarray, ties: str) -> float:
    theta = np.r_[0.0, x[:-1]]
    d = theta[pairs[:, 0]] - theta[pairs[:, 1]]
    a, t, b = stats.T
    if ties == "davidson":
        nu = np.exp(x[-1])
        z = np.exp(d / 2) + np.exp(-d / 2) + nu
        ll = a * (d / 2 - np.log(z)) + b * (-d / 2 - np.log(z)) + t * np.log(nu / z)
    else:
        eta = x[-1]
        if eta <= 0:
            return np.inf
        tie = 1 - np.exp(log_expit(d - eta)) - np.exp(log_expit(-d - eta))
        ll = a * log_expit(d - eta) + b * log_expit(-d - eta) + t * np.log(tie)
    return -float(ll.sum())


@pytest.mark.parametrize("ties", ["davidson", "rao-kupper"])
def test_tie_models_match_a_generic_optimiser(ties: str) -> None:
    rng = np.random.default_rng(2)
    m = 5
    pairs, stats = _pairs(m), _stats(rng, m)
    fit = fit_pairs(stats, pairs, m, ties=ties)
    start = np.r_[np.zeros(m - 1), 0.5]
    reference = minimize(
        _neg_loglik,
        start,
        args=(stats[0], pairs, ties),
        method="Nelder-Mead",
        options={"xatol": 1e-11, "fatol": 1e-14, "maxiter": 100_000, "maxfev": 100_000},
    )
    np.testing.assert_allclose(fit.theta[0, 1:], reference.x[:-1], atol=TOL)
    assert fit.extra[0] == pytest.approx(reference.x[-1], abs=TOL)


@pytest.mark.parametrize("ties", ["half", "davidson", "rao-kupper"])
def test_a_batch_equals_separate_fits(ties: str) -> None:
    rng = np.random.default_rng(3)
    m = 6
    pairs, stats = _pairs(m), _stats(rng, m, n_res=8)
    batch = fit_pairs(stats, pairs, m, ties=ties)
    for k in range(8):
        alone = fit_pairs(stats[k : k + 1], pairs, m, ties=ties)
        np.testing.assert_allclose(batch.theta[k], alone.theta[0], atol=1e-10)


def test_an_unbeaten_model_is_unbounded_unless_a_prior_holds_it() -> None:
    battles = Battles.build(
        ["q1", "q2", "q3", "q1", "q2"],
        ["a", "a", "a", "b", "b"],
        ["b", "c", "b", "c", "c"],
        [1.0, 1.0, 1.0, 0.5, 1.0],
    )
    fit = fit_pairs(np.array([[[3.0, 0.0, 0.0]]]), np.array([[0, 1]]), 2)
    assert not fit.converged[0] and np.isnan(fit.theta).all()
    with pytest.raises(ValueError, match=r"unbounded.*--prior"):
        fit_strengths(battles, n_resamples=10, rng=np.random.default_rng(0))
    held = fit_strengths(battles, prior=1.0, n_resamples=10, rng=np.random.default_rng(0))
    assert np.isfinite(held.theta).all()
    assert held.theta[0] > held.theta[1] > held.theta[2]


def test_models_that_never_met_are_refused() -> None:
    battles = Battles.build(["q", "q"], ["a", "c"], ["b", "d"], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"never met|never played"):
        fit_strengths(battles, n_resamples=5, rng=np.random.default_rng(0))
