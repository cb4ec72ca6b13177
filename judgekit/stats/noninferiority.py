"""Non-inferiority of a changed judge's agreement with humans, by a clustered paired bootstrap.

H0: agree(changed) <= agree(reference) - delta. Both judges rated the same items, so the two
agreements are computed on the same resample of groups (items that share a question or article
are drawn together) and their difference is bootstrapped as one statistic. Its interval is
estimate +- t(1 - alpha/2, G - 1) x sqrt(G / (G - 1)) x (bootstrap sd), G the number of groups:
H0 is rejected (non-inferior) when the lower end is above -delta, inferiority is shown when the
upper end is below -delta, each a one-sided test at alpha / 2. Plain percentile bounds rejected
H0 at the margin too often on clustered data (one-sided at alpha: 0.10-0.14; at alpha / 2 still
0.07 with 20 clusters of 10), because a few discordant items make the bootstrap spread narrow
exactly when the estimate looks good; the small-sample factor and t quantile bring the measured
size under alpha (``benchmarks/noninferiority.py``, docs/certify.md).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from judgekit.stats.bootstrap import ConfidenceInterval, _check_resampling, _collect, _evaluate
from judgekit.stats.clusters import Groups

__all__ = ["NonInferiority", "noninferiority"]

#: agreement(human, judge) -> a number; higher is better (kappa, Spearman).
Agreement = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class NonInferiority:
    """The difference changed - reference with its interval (level 1 - alpha) and the two
    one-sided decisions: ``non_inferior`` (lower end > -delta, H0 rejected) and ``inferior``
    (upper end < -delta, inferiority shown); neither: not decided."""

    difference: ConfidenceInterval
    delta: float
    alpha: float

    @property
    def non_inferior(self) -> bool:
        return self.difference.low > -self.delta

    @property
    def inferior(self) -> bool:
        return self.difference.high < -self.delta


def noninferiority(
    agreement: Agreement,
    human: np.ndarray,
    reference: np.ndarray,
    changed: np.ndarray,
    *,
    rng: np.random.Generator,
    delta: float,
    alpha: float = 0.05,
    groups: Sequence[Hashable] | np.ndarray | None = None,
    n_resamples: int = 2000,
) -> NonInferiority:
    """Test agree(changed) > agree(reference) - delta on paired per-item arrays.

    ``human``, ``reference`` and ``changed`` hold one entry per item (the judges' codes or
    scores, whatever ``agreement`` reads); ``groups`` one cluster key per item. Resamples on
    which the difference is undefined are dropped and counted, as in ``bootstrap_ci``.
    """
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    data = [np.asarray(a) for a in (human, reference, changed)]
    clusters = Groups.of(groups, len(data[0]))
    _check_resampling(clusters, n_resamples, 1.0 - alpha)

    def difference(h: np.ndarray, ref: np.ndarray, new: np.ndarray) -> float:
        return agreement(h, new) - agreement(h, ref)

    estimate = difference(*data)
    boot, n_failed = _collect(
        [
            _evaluate(difference, *(d[i] for d in data))
            for i in (clusters.resample(rng) for _ in range(n_resamples))
        ],
        n_resamples,
    )
    g = clusters.n_groups
    spread = float(np.std(boot, ddof=1)) if boot.size > 1 else 0.0
    half = float(sps.t.ppf(1 - alpha / 2, g - 1)) * np.sqrt(g / (g - 1)) * spread
    unit = "groups" if clusters.clustered else "items"
    ci = ConfidenceInterval(
        estimate=float(estimate),
        low=float(estimate - half),
        high=float(estimate + half),
        level=1.0 - alpha,
        method=f"t; paired bootstrap sd x sqrt(G/(G-1)) over {g} {unit}",
        n_resamples=n_resamples,
        n_failed=n_failed,
        n_groups=g if clusters.clustered else None,
    )
    return NonInferiority(difference=ci, delta=delta, alpha=alpha)
