"""Non-inferiority of a changed judge's agreement with humans, by a clustered paired bootstrap.

H0: agree(changed) <= agree(reference) - delta. Both judges rated the same items, so the two
agreements are computed on the same resample of groups (items that share a question or article
are drawn together) and their difference is bootstrapped as one statistic. H0 is rejected
(non-inferior) when the lower end of the two-sided (1 - alpha) percentile interval is above
-delta; inferiority is shown when its upper end is below -delta. Each end is a one-sided bound
at alpha / 2, as non-inferiority trials use: the one-sided percentile bound at alpha itself
rejected at the margin in 10-14% of simulated clustered samples (a few discordant items make the
bootstrap spread too narrow exactly when the estimate looks good). Size and power measured by
simulation: ``benchmarks/noninferiority.py``, docs/certify.md.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from judgekit.stats.bootstrap import ConfidenceInterval, bootstrap_ci

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
    method: Literal["percentile", "bca"] = "percentile",
) -> NonInferiority:
    """Test agree(changed) > agree(reference) - delta on paired per-item arrays.

    ``human``, ``reference`` and ``changed`` hold one entry per item (the judges' codes or
    scores, whatever ``agreement`` reads); ``groups`` one cluster key per item. Percentile by
    default: its size at the margin is checked by simulation; BCa costs a jackknife per group.
    """
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")

    def difference(h: np.ndarray, ref: np.ndarray, new: np.ndarray) -> float:
        return agreement(h, new) - agreement(h, ref)

    ci = bootstrap_ci(
        difference,
        human,
        reference,
        changed,
        rng=rng,
        groups=groups,
        n_resamples=n_resamples,
        level=1.0 - alpha,
        method=method,
    )
    return NonInferiority(difference=ci, delta=delta, alpha=alpha)
