"""Paired comparisons of two runs on the same items: sign test and sign-flip permutation test.

With ``groups`` (one key per item) the unit is the group, not the item: the sign test counts
groups whose summed difference is positive, and the permutation test flips the sign of a whole
group at once, so items that share a question count once. All-distinct keys give exactly the
item-level test (same draws from the same generator).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from scipy import stats

from judgekit.stats.clusters import Groups


def sign_test(diff: np.ndarray, *, groups: Sequence[Hashable] | np.ndarray | None = None) -> float:
    """Two-sided exact binomial p-value on the signs of non-zero differences (1.0 if none);
    with ``groups``, on the signs of the per-group summed differences."""
    diff = np.asarray(diff, dtype=float)
    clusters = Groups.of(groups, diff.size)
    if clusters.clustered:
        diff = clusters.sums(diff)
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5).pvalue)


def permutation_test(
    diff: np.ndarray,
    *,
    rng: np.random.Generator,
    n_resamples: int = 10000,
    groups: Sequence[Hashable] | np.ndarray | None = None,
) -> float:
    """Two-sided p-value of the mean paired difference under random sign flips.

    Exact under the null that each item's (with ``groups``: each group's) two scores are
    exchangeable; the +1 correction keeps the p-value away from an impossible 0.
    """
    diff = np.asarray(diff, dtype=float)
    if diff.size == 0:
        raise ValueError("permutation test needs at least one paired difference")
    clusters = Groups.of(groups, diff.size)
    observed = abs(diff.mean())
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_resamples, clusters.n_groups))
    null = np.abs((signs[:, clusters.codes] * diff).mean(axis=1))
    return float((1 + (null >= observed - 1e-12).sum()) / (n_resamples + 1))
