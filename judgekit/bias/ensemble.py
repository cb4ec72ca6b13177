"""Prompt-variant ensembles: aggregate verdicts and measure how much the wording matters.

A rubric is judged under several paraphrased prompt variants. Aggregating across variants
averages out wording-specific quirks; the variance decomposition and the inter-variant agreement
tell the user whether the rubric itself is ambiguous (verdicts depend on the wording).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "VarianceDecomposition",
    "aggregate_variants",
    "valid_variant_counts",
    "variance_decomposition",
    "variant_agreement",
]


def _as_cube(probs: np.ndarray) -> np.ndarray:
    arr = np.asarray(probs, dtype=float)
    if arr.ndim != 3:
        raise ValueError(f"expected (items x variants x labels), got shape {arr.shape}")
    return arr


def valid_variant_counts(probs: np.ndarray) -> np.ndarray:
    """Per item, how many variants returned a valid (all-finite) distribution."""
    return np.isfinite(_as_cube(probs)).all(axis=2).sum(axis=1)


def aggregate_variants(
    probs: np.ndarray, method: Literal["mean", "majority", "median"] = "mean"
) -> np.ndarray:
    """One distribution per item from its valid variants (items x variants x labels in).

    Invalid variants (rows with NaN) are skipped per item; an item with no valid variant is a NaN
    row, to be counted as invalid downstream, never a default label.

    - ``mean``: mean of the probabilities.
    - ``majority``: one-hot on the label that is the argmax of the most variants. A tie in vote
      counts goes to the tied label with the highest mean probability, so the vote uses the soft
      information the votes discard; labels still tied after that share the item equally (an
      exact tie stays a tie, never a win for the first label listed).
    - ``median``: per-label median, renormalised; robust to one variant going astray. If every
      per-label median is 0 (the variants scatter their mass), the mean is returned instead.
    """
    cube = _as_cube(probs)
    n, _, k = cube.shape
    valid = np.isfinite(cube).all(axis=2)
    has_any = valid.any(axis=1)
    masked = np.where(valid[:, :, None], cube, np.nan)
    out = np.full((n, k), np.nan)
    sub, sub_valid = masked[has_any], valid[has_any]
    mean = np.nanmean(sub, axis=1)
    if method == "mean":
        out[has_any] = mean
    elif method == "majority":
        picks = np.where(sub_valid[:, :, None], sub, 0.0).argmax(axis=2)
        votes = np.where(sub_valid, picks, -1)
        counts = (votes[:, :, None] == np.arange(k)).sum(axis=1)
        tied = counts == counts.max(axis=1, keepdims=True)
        tied_mean = np.where(tied, mean, -np.inf)
        winners = tied_mean == tied_mean.max(axis=1, keepdims=True)
        out[has_any] = winners / winners.sum(axis=1, keepdims=True)
    elif method == "median":
        med = np.nanmedian(sub, axis=1)
        total = med.sum(axis=1, keepdims=True)
        out[has_any] = np.where(total > 0, med / np.where(total > 0, total, 1.0), mean)
    else:
        raise ValueError(f"method must be 'mean', 'majority' or 'median', got {method!r}")
    return out


@dataclass(frozen=True)
class VarianceDecomposition:
    """Variance components of item x variant scores (two-way random effects, one score per cell).

    ``item_var``: real differences between items (what the judge should measure).
    ``variant_var``: systematic shift of a whole variant (a wording that is harsher/softer).
    ``residual_var``: item-by-variant interaction plus noise (wordings disagree item by item).
    A large variant or residual share means the rubric's verdicts depend on its wording.
    Components estimated negative are set to 0 and named in ``truncated``; shares are of the sum
    of the (truncated) components. ``n_dropped`` items had a NaN in some variant.
    """

    item_var: float
    variant_var: float
    residual_var: float
    item_share: float
    variant_share: float
    residual_share: float
    n_items: int
    n_variants: int
    n_dropped: int
    truncated: tuple[str, ...]


def variance_decomposition(scores: np.ndarray) -> VarianceDecomposition:
    """Method-of-moments (ANOVA) estimates from expected scores, items x variants.

    Model ``y_ij = mu + a_i + b_j + e_ij``: E[MS_item] = s2_e + v*s2_a, E[MS_variant] = s2_e +
    n*s2_b, E[MS_residual] = s2_e, solved for the components.
    """
    arr = np.asarray(scores, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"expected (items x variants), got shape {arr.shape}")
    complete = np.isfinite(arr).all(axis=1)
    y = arr[complete]
    n, v = y.shape
    if n < 2 or v < 2:
        raise ValueError(f"need at least 2 complete items and 2 variants, got {n} x {v}")
    grand = y.mean()
    item_means = y.mean(axis=1)
    variant_means = y.mean(axis=0)
    ms_item = v * np.sum((item_means - grand) ** 2) / (n - 1)
    ms_variant = n * np.sum((variant_means - grand) ** 2) / (v - 1)
    resid = y - item_means[:, None] - variant_means[None, :] + grand
    ms_resid = np.sum(resid**2) / ((n - 1) * (v - 1))
    raw = {
        "item": (ms_item - ms_resid) / v,
        "variant": (ms_variant - ms_resid) / n,
        "residual": ms_resid,
    }
    comps = {name: max(float(value), 0.0) for name, value in raw.items()}
    total = sum(comps.values())

    def share(name: str) -> float:
        return comps[name] / total if total > 0 else float("nan")

    return VarianceDecomposition(
        item_var=comps["item"],
        variant_var=comps["variant"],
        residual_var=comps["residual"],
        item_share=share("item"),
        variant_share=share("variant"),
        residual_share=share("residual"),
        n_items=n,
        n_variants=v,
        n_dropped=int((~complete).sum()),
        truncated=tuple(name for name, value in raw.items() if value < 0),
    )


def variant_agreement(
    labels_or_scores: np.ndarray,
    level: Literal["nominal", "ordinal", "interval", "ratio"],
) -> float:
    """Krippendorff's alpha with variants as raters (items x variants in, NaN = missing).

    Near 1: the wording does not matter; low: the rubric is read differently per wording.
    """
    from judgekit.stats.agreement import krippendorff_alpha

    arr = np.asarray(labels_or_scores, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"expected (items x variants), got shape {arr.shape}")
    return float(krippendorff_alpha(arr.T, level))
