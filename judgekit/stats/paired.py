"""Paired comparisons of two runs on the same items: sign test and sign-flip permutation test."""

from __future__ import annotations

import numpy as np
from scipy import stats


def sign_test(diff: np.ndarray) -> float:
    """Two-sided exact binomial p-value on the signs of non-zero differences (1.0 if none)."""
    diff = np.asarray(diff, dtype=float)
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5).pvalue)


def permutation_test(
    diff: np.ndarray, *, rng: np.random.Generator, n_resamples: int = 10000
) -> float:
    """Two-sided p-value of the mean paired difference under random sign flips.

    Exact under the null that each item's two scores are exchangeable; the +1 correction keeps
    the p-value away from an impossible 0.
    """
    diff = np.asarray(diff, dtype=float)
    if diff.size == 0:
        raise ValueError("permutation test needs at least one paired difference")
    observed = abs(diff.mean())
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_resamples, diff.size))
    null = np.abs((signs * diff).mean(axis=1))
    return float((1 + (null >= observed - 1e-12).sum()) / (n_resamples + 1))
