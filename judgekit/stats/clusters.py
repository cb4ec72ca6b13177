"""Items that share a group (question, article, instruction) as clusters: resampling and variance.

Items of one group are not independent: a hard instruction makes every comparison on it hard.
An interval that treats them as independent is too narrow, so every interval in ``stats``
resamples or sums whole groups when it is given one group key per item. Groups are numbered in
order of first appearance, so with all-distinct keys group ``j`` is item ``j`` and every
function here reduces exactly to its item-level form (same draws from the same generator).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Groups"]


@dataclass(frozen=True)
class Groups:
    """Group membership of ``n`` items: ``codes[i]`` is item i's group, numbered by first
    appearance; ``order`` lists the items group by group, group ``g`` at
    ``order[starts[g]:starts[g] + sizes[g]]``."""

    codes: np.ndarray
    sizes: np.ndarray
    order: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, keys: Sequence[Hashable] | np.ndarray | None, n: int) -> Groups:
        """One key per item (any hashable); None: every item is its own group."""
        if keys is None:
            codes = np.arange(n)
        else:
            key_list = keys.tolist() if isinstance(keys, np.ndarray) else list(keys)
            if len(key_list) != n:
                raise ValueError(f"groups has {len(key_list)} keys for {n} items")
            number: dict[Hashable, int] = {}
            codes = np.array([number.setdefault(k, len(number)) for k in key_list], dtype=int)
        sizes = np.bincount(codes, minlength=int(codes.max(initial=-1)) + 1)
        order = np.argsort(codes, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        return cls(codes=codes, sizes=sizes, order=order, starts=starts)

    @property
    def n_groups(self) -> int:
        return int(self.sizes.size)

    @property
    def clustered(self) -> bool:
        """Whether any group holds more than one item."""
        return bool(self.sizes.size and self.sizes.max() > 1)

    def items(self, drawn: np.ndarray) -> np.ndarray:
        """Item indices of the drawn groups, whole groups in draw order."""
        if not self.clustered:
            return drawn
        lengths = self.sizes[drawn]
        offsets = np.repeat(self.starts[drawn] - np.cumsum(lengths) + lengths, lengths)
        return self.order[offsets + np.arange(int(lengths.sum()))]

    def resample(self, rng: np.random.Generator) -> np.ndarray:
        """Item indices of one cluster-bootstrap resample: as many groups as there are, drawn
        with replacement (with singleton groups: ``rng.integers(0, n, size=n)`` exactly)."""
        return self.items(rng.integers(0, self.n_groups, size=self.n_groups))

    def without(self, group: int) -> np.ndarray:
        """Item indices of every group but ``group`` (the cluster jackknife)."""
        return np.flatnonzero(self.codes != group)

    def sums(self, x: np.ndarray) -> np.ndarray:
        """Per-group sums of a per-item vector."""
        return np.bincount(self.codes, weights=np.asarray(x, dtype=float), minlength=self.n_groups)

    def mean_variance(self, x: np.ndarray) -> float:
        """CR1 cluster-robust variance of the mean of ``x``: G/(G-1) * sum_g e_g^2 / n^2, with
        e_g the group's summed deviations from the mean (Liang-Zeger with the small-sample factor
        statsmodels uses). Singleton groups: s^2 / n, the textbook variance of a mean."""
        v = np.asarray(x, dtype=float)
        g = self.n_groups
        e = self.sums(v - v.mean())
        return float(g / (g - 1) * np.sum(e**2) / v.size**2)
