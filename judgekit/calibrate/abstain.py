"""Abstention with a guarantee: keep only items whose confidence clears a threshold chosen so that
agreement with humans on the kept items is at least a target with probability >= 1 - alpha.

Fixed-sequence testing as in "Trust or Escalate" (Jung et al., ICLR 2025): thresholds are tested
from most to least confident on a calibration split, each with an exact binomial (Clopper-Pearson)
test of H0 "agreement on kept items < target"; the sequence stops at the first threshold that
cannot reject, and the last rejected threshold is used. No family-wise correction is needed
because the order is fixed in advance. When no threshold rejects, nothing is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

from judgekit.calibrate.outputs import JudgeOutputs

# Fixed before seeing data, as fixed-sequence testing requires: 1.00, 0.99, ..., 0.00.
THRESHOLDS = np.round(np.linspace(1.0, 0.0, 101), 2)
# Thresholds keeping fewer items are not tested: one error among a handful of items would stop
# the sequence before the thresholds that matter. Counts depend on the confidences only, not on
# agreement, so skipping by count keeps the fixed-sequence guarantee (conditional on them).
MIN_KEPT = 20

CONFIDENCE_RULE = (
    "probability of the predicted label x (1 + share of prompt variants whose AB and BA verdicts "
    "agree) / 2; pointwise: the probability alone; invalid verdicts have no confidence"
)


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold (None: none met the target) and its calibration-split figures."""

    target: float
    alpha: float
    threshold: float | None
    n: int
    n_kept: int
    lower_bound: float | None


def clopper_pearson_lower(k: np.ndarray | int, n: np.ndarray | int, alpha: float) -> np.ndarray:
    """One-sided exact (1 - alpha) lower bound on a binomial proportion; 0 where k == 0."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    safe_k = np.maximum(k, 1.0)
    bound = beta.ppf(alpha, safe_k, np.maximum(n - k + 1, 1.0))
    return np.where(k > 0, bound, 0.0)


def min_testable(target: float, alpha: float) -> int:
    """Fewest kept items whose perfect agreement could reject H0 (target**n <= alpha)."""
    return math.ceil(math.log(alpha) / math.log(target))


def select_threshold(
    confidence: np.ndarray,
    agreed: np.ndarray,
    *,
    target: float,
    alpha: float = 0.1,
    min_kept: int = MIN_KEPT,
) -> ThresholdChoice:
    """The lowest threshold (most coverage) that fixed-sequence testing certifies.

    ``confidence`` NaN (an invalid verdict) is never kept. Thresholds keeping fewer than
    ``max(min_kept, min_testable)`` items are skipped rather than tested (see ``MIN_KEPT``).
    """
    if not 0 < target < 1 or not 0 < alpha < 1:
        raise ValueError("target and alpha must be in (0, 1)")
    confidence, agreed = np.asarray(confidence, dtype=float), np.asarray(agreed, dtype=bool)
    finite = np.isfinite(confidence)
    kept = finite[None, :] & (np.where(finite, confidence, -1.0)[None, :] >= THRESHOLDS[:, None])
    n_kept = kept.sum(axis=1)
    k_agreed = (kept & agreed[None, :]).sum(axis=1)
    lower = clopper_pearson_lower(k_agreed, n_kept, alpha)
    chosen: int | None = None
    for i in range(len(THRESHOLDS)):
        if n_kept[i] < max(min_kept, min_testable(target, alpha)):
            continue
        if lower[i] < target:
            break
        chosen = i
    return ThresholdChoice(
        target=target,
        alpha=alpha,
        threshold=float(THRESHOLDS[chosen]) if chosen is not None else None,
        n=len(confidence),
        n_kept=int(n_kept[chosen]) if chosen is not None else 0,
        lower_bound=float(lower[chosen]) if chosen is not None else None,
    )


def order_agreement(outputs: JudgeOutputs) -> np.ndarray:
    """Share of prompt variants whose AB and (unswapped) BA verdicts pick the same label.

    1 for pointwise outputs (one order); 0 where no variant has both orders valid.
    """
    n = len(outputs.item_ids)
    variants = {key.rsplit("|", 1)[0] for key in outputs.order_probs if key.endswith("|AB")}
    pairs = [
        (outputs.order_probs[f"{v}|AB"], outputs.order_probs[f"{v}|BA"])
        for v in sorted(variants)
        if f"{v}|BA" in outputs.order_probs
    ]
    if not pairs:
        return np.ones(n)
    agree = np.zeros(n)
    counted = np.zeros(n)
    for ab, ba in pairs:
        both = np.isfinite(ab).all(axis=1) & np.isfinite(ba).all(axis=1)
        same = np.nan_to_num(ab).argmax(axis=1) == np.nan_to_num(ba).argmax(axis=1)
        agree += both & same
        counted += both
    return np.divide(agree, counted, out=np.zeros(n), where=counted > 0)


def confidence(probs: np.ndarray, agreement: np.ndarray) -> np.ndarray:
    """``CONFIDENCE_RULE``: calibrated probability, discounted when the two orders disagree."""
    valid = np.isfinite(probs).all(axis=1)
    top = np.where(valid, np.nan_to_num(probs, nan=-1.0).max(axis=1), np.nan)
    return top * (1.0 + agreement) / 2.0
