"""Style-controlled Bradley-Terry against arena-rank's ContextualBradleyTerry and scikit-learn.

scikit-learn with the design Arena-Hard-Auto v0.1 builds (each battle twice, a tie as one A win
plus one B win, model columns +-ln 10, L2 penalty with C=1) is the publisher's own style fit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from judgekit.rank import fit_contextual, fit_pairs

TOL = 1e-6


def _battles(seed: int, m: int = 5, n: int = 400, f: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    z = rng.normal(size=(n, f))
    p = expit(rng.normal(size=m)[a] - rng.normal(size=m)[b] + z @ rng.normal(size=f) * 0.5)
    u = rng.random(n)
    y = np.where(u < 0.85 * p, 1.0, np.where(u < 0.85 * p + 0.15, 0.5, 0.0))
    return a, b, z, y


def test_matches_arena_rank_contextual_bradley_terry() -> None:
    jnp = pytest.importorskip("jax.numpy")
    ctx = pytest.importorskip("arena_rank.models.contextual_bradley_terry")
    data = pytest.importorskip("arena_rank.utils.data_utils")
    a, b, z, y = _battles(0)
    m, n, f = 5, len(a), z.shape[1]
    dataset = data.ContextualPairDataset(
        competitors=[str(i) for i in range(m)],
        pairs=jnp.array(np.stack([a, b], 1)),
        outcomes=jnp.array(y),
        features=jnp.array(z),
        weights=jnp.ones(n),
    )
    model = ctx.ContextualBradleyTerry(m, f, reg=1.0, ftol=1e-15, gtol=1e-12, max_iter=5000)
    model.fit(dataset)
    ratings = np.asarray(model.params["ratings"])
    fit = fit_contextual(a, b, z, y, np.ones((1, n)), m, ridge=1.0 * n)  # reg is per row
    theta = fit.theta[0]
    np.testing.assert_allclose(theta - theta.mean(), ratings - ratings.mean(), atol=TOL)
    np.testing.assert_allclose(fit.gamma[0], np.asarray(model.params["coeffs"]), atol=TOL)


def test_matches_arena_hard_v01_style_fit_with_sklearn() -> None:
    a, b, z, y = _battles(1)
    m, n = 5, len(a)
    x = np.zeros((2 * n, m + z.shape[1]))
    rows = np.arange(2 * n)
    x[rows, np.r_[a, a]] = math.log(10)
    x[rows, np.r_[b, b]] = -math.log(10)
    x[:, m:] = np.r_[z, z]
    target = np.r_[(y >= 0.5).astype(float), (y == 1).astype(float)]  # a tie: one win each
    reference = LogisticRegression(fit_intercept=False, tol=1e-12, max_iter=10_000).fit(x, target)
    coef = reference.coef_[0]
    # sklearn: sum of log-losses over 2n rows + |w|^2 / 2, strengths in log10 units
    fit = fit_contextual(a, b, z, y, np.ones((1, n)), m, ridge=0.5, prior=0.5 / math.log(10) ** 2)
    theta = fit.theta[0]
    np.testing.assert_allclose(theta - theta.mean(), math.log(10) * coef[:m], atol=TOL)
    np.testing.assert_allclose(fit.gamma[0], coef[m:], atol=TOL)


def test_without_features_it_is_plain_bradley_terry() -> None:
    a, b, _, y = _battles(2)
    m = 5
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pairs, index = np.unique(np.stack([lo, hi], 1), axis=0, return_inverse=True)
    y_lo = np.where(a < b, y, 1 - y)
    stats = np.zeros((1, len(pairs), 3))
    for column, value in enumerate((1.0, 0.5, 0.0)):
        np.add.at(stats[0, :, column], index.ravel(), (y_lo == value).astype(float))
    plain = fit_pairs(stats, pairs, m)
    context = fit_contextual(a, b, np.zeros((len(a), 0)), y, np.ones((1, len(a))), m)
    np.testing.assert_allclose(context.theta, plain.theta, atol=1e-10)


def test_row_weights_equal_repeated_rows() -> None:
    a, b, z, y = _battles(3, n=120)
    counts = np.random.default_rng(0).integers(0, 3, len(a))
    weighted = fit_contextual(a, b, z, y, counts[None].astype(float), 5)
    idx = np.repeat(np.arange(len(a)), counts)
    repeated = fit_contextual(a[idx], b[idx], z[idx], y[idx], np.ones((1, idx.size)), 5)
    np.testing.assert_allclose(weighted.theta, repeated.theta, atol=1e-10)
    np.testing.assert_allclose(weighted.gamma, repeated.gamma, atol=1e-10)
