"""Abstention with a guarantee: keep only items whose confidence clears a threshold chosen so that
agreement with humans on the kept items is at least a target with probability >= 1 - alpha.

Fixed-sequence testing as in "Trust or Escalate" (Jung et al., ICLR 2025): thresholds are tested
from most to least confident on a calibration split, each with a level-alpha test of H0
"agreement on kept items < target"; the sequence stops at the first threshold that cannot
reject, and the last rejected threshold is used. No family-wise correction is needed because the
order is fixed in advance. When no threshold rejects, nothing is kept.

Which test depends on whether the calibration items are independent:

- Every item its own group (``groups`` None or all distinct): the exact binomial test
  (Clopper-Pearson lower bound >= target), as before. It assumes independent items.
- Items that share a question or article (``groups``): they are not independent, and the
  binomial test over-certifies (on PandaLM, a judge at agreement 0.895 was certified for 0.9 in
  14.7% of 1,000 group splits at alpha 0.1, this test in 0.3%; ``benchmarks/guarantees.py``,
  docs/cascade.md). The unit becomes the group:
  with n_g kept and k_g agreeing items in group g, H0 is E[k_g - target * n_g] < 0, tested by
  betting on the groups (Waudby-Smith & Ramdas 2024, JRSS-B, predictable plug-in bets): the
  capital prod_g (1 + lam_g (k_g - target * n_g) / B) is an e-value under H0, and the test
  rejects when it reaches 1 / alpha (Ville / Markov). Valid for any number of groups and any
  dependence inside a group, assuming groups are independent and none holds more than B items
  (``max_group_size``, default the largest calibration group). The price is power: it needs a
  larger margin over the target than the binomial test needs on independent items.

Thresholds keeping fewer than ``MIN_KEPT`` items, or too few to reject H0 at a plausible
agreement, are skipped rather than tested: that depends on the confidences only, so the
fixed-sequence guarantee still holds (conditional on them). For the binomial test "too few" means
that even perfect agreement could not reject (``min_testable``). The group test needs many more
groups to reject, and a test started where it cannot is a wasted stop, so it starts where an
agreement of target + 3/4 (1 - target) on the kept items would reject (``SCREEN_SHARE``; for
the judge with an informative confidence in ``benchmarks/guarantees.py``, over 1,000 PandaLM
group splits, this certified target 0.9 in 67% of them against 21% with the perfect-agreement
rule and 4% with share 1/2, and 0.8 in 100% against 93%; misses stayed <= 0.043).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

from judgekit.calibrate.measure.outputs import JudgeOutputs
from judgekit.stats import Groups

# Fixed before seeing data, as fixed-sequence testing requires: 1.00, 0.99, ..., 0.00.
THRESHOLDS = np.round(np.linspace(1.0, 0.0, 101), 2)
# Thresholds keeping fewer items are not tested: one error among a handful of items would stop
# the sequence before the thresholds that matter. Counts depend on the confidences only, not on
# agreement, so skipping by count keeps the fixed-sequence guarantee (conditional on them).
MIN_KEPT = 20
# A bet never stakes more than this share of what one group could lose, so the capital stays
# positive whatever a group holds.
MAX_STAKE = 0.95
# The group test is tried where the kept items would certify at agreement
# target + SCREEN_SHARE * (1 - target); a share fixed in advance, like the thresholds.
SCREEN_SHARE = 0.75

CONFIDENCE_RULE = (
    "probability of the predicted label x (1 + share of prompt variants whose AB and BA verdicts "
    "agree) / 2; pointwise: the probability alone; invalid verdicts have no confidence"
)
CLOPPER_PEARSON = "Clopper-Pearson (independent items)"
GROUP_BETTING = "betting over groups (Waudby-Smith & Ramdas)"


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold (None: none met the target) and its calibration-split figures.

    ``lower_bound`` is the (1 - alpha) lower confidence bound on agreement at the threshold from
    ``method``; ``n_groups`` counts the calibration groups (= items when they are independent).
    """

    target: float
    alpha: float
    threshold: float | None
    n: int
    n_kept: int
    lower_bound: float | None
    method: str = CLOPPER_PEARSON
    n_groups: int = 0
    n_groups_kept: int = 0


def clopper_pearson_lower(k: np.ndarray | int, n: np.ndarray | int, alpha: float) -> np.ndarray:
    """One-sided exact (1 - alpha) lower bound on a binomial proportion; 0 where k == 0."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    safe_k = np.maximum(k, 1.0)
    bound = beta.ppf(alpha, safe_k, np.maximum(n - k + 1, 1.0))
    return np.where(k > 0, bound, 0.0)


def min_testable(target: float, alpha: float) -> int:
    """Fewest kept items whose perfect agreement could reject H0 (target**n <= alpha)."""
    return math.ceil(math.log(alpha) / math.log(target))


def group_log_evalue(
    n_kept: np.ndarray, k_agreed: np.ndarray, target: float, alpha: float, bound: float
) -> float:
    """Log capital of betting against H0 "E[k_g - target * n_g] < 0" over groups, in order.

    Per group x_g = (k_g - target * n_g) / ``bound`` lies in [-target, 1 - target]. The stake is
    WSR's predictable plug-in, sqrt(2 log(1/alpha) / (G var)), with var the running variance of
    the groups before (prior 1/4), capped at MAX_STAKE / target so no factor reaches 0. Under H0
    each factor has expectation <= 1, so the final capital is an e-value.
    """
    x = (np.asarray(k_agreed, dtype=float) - target * np.asarray(n_kept, dtype=float)) / bound
    n_groups, cap = x.size, MAX_STAKE / target
    log_capital, total, squares = 0.0, 0.0, 0.25
    for i, xi in enumerate(x):
        stake = min(cap, math.sqrt(2 * math.log(1 / alpha) / (n_groups * squares / (i + 1))))
        log_capital += math.log1p(stake * xi)
        total += xi
        squares += (xi - total / (i + 1)) ** 2
    return log_capital


def _group_lower_bound(
    n_kept: np.ndarray, k_agreed: np.ndarray, target: float, alpha: float, bound: float
) -> float:
    """The largest agreement (to 1e-4, bisection up from a rejected target) the test rejects."""
    low, high = target, 1.0
    while high - low > 1e-4:
        mid = (low + high) / 2
        if group_log_evalue(n_kept, k_agreed, mid, alpha, bound) >= math.log(1 / alpha):
            low = mid
        else:
            high = mid
    return low


def _group_counts(kept: np.ndarray, agreed: np.ndarray, clusters: Groups) -> tuple[list, list]:
    """Per threshold: kept and agreeing items of each group that keeps at least one item."""
    n_g, k_g = [], []
    for row in kept:
        sizes = clusters.sums(row)
        hits = clusters.sums(row & agreed)
        n_g.append(sizes[sizes > 0])
        k_g.append(hits[sizes > 0])
    return n_g, k_g


@dataclass(frozen=True)
class _Test:
    """One test per threshold index: worth testing, certified, and its lower bound."""

    method: str
    testable: Callable[[int], bool]
    certified: Callable[[int], bool]
    lower_bound: Callable[[int], float]


def _binomial_test(n_kept: np.ndarray, k_agreed: np.ndarray, target: float, alpha: float) -> _Test:
    """Items independent: exact binomial; worth testing once perfect agreement could reject."""
    lower = clopper_pearson_lower(k_agreed, n_kept, alpha)
    return _Test(
        CLOPPER_PEARSON,
        testable=lambda i: bool(n_kept[i] >= min_testable(target, alpha)),
        certified=lambda i: bool(lower[i] >= target),
        lower_bound=lambda i: float(lower[i]),
    )


def _group_test(
    kept: np.ndarray,
    agreed: np.ndarray,
    clusters: Groups,
    target: float,
    alpha: float,
    bound: float,
) -> _Test:
    """Groups of items: betting over groups; worth testing once the kept items would certify at
    agreement target + SCREEN_SHARE * (1 - target)."""
    if bound < clusters.sizes.max():
        raise ValueError(f"max_group_size {bound:g} < the largest group ({clusters.sizes.max()})")
    n_g, k_g = _group_counts(kept, agreed, clusters)
    rejects = math.log(1 / alpha)
    plausible = target + SCREEN_SHARE * (1 - target)
    return _Test(
        GROUP_BETTING,
        testable=lambda i: (
            group_log_evalue(n_g[i], n_g[i] * plausible, target, alpha, bound) >= rejects
        ),
        certified=lambda i: group_log_evalue(n_g[i], k_g[i], target, alpha, bound) >= rejects,
        lower_bound=lambda i: _group_lower_bound(n_g[i], k_g[i], target, alpha, bound),
    )


def select_threshold(
    confidence: np.ndarray,
    agreed: np.ndarray,
    *,
    target: float,
    alpha: float = 0.1,
    groups: Sequence[Hashable] | np.ndarray | None = None,
    min_kept: int = MIN_KEPT,
    max_group_size: int | None = None,
) -> ThresholdChoice:
    """The lowest threshold (most coverage) that fixed-sequence testing certifies.

    ``confidence`` NaN (an invalid verdict) is never kept. ``groups`` (one key per item, e.g.
    the record's ``group``) switches from the binomial test to the group betting test when any
    group holds two or more items (module docstring); all-distinct keys change nothing.
    ``max_group_size``: the most items any group can hold (default: the largest group here).
    Thresholds keeping fewer than ``min_kept`` items, or too few to certify at a plausible
    agreement, are skipped rather than tested (module docstring).
    """
    if not 0 < target < 1 or not 0 < alpha < 1:
        raise ValueError("target and alpha must be in (0, 1)")
    confidence, agreed = np.asarray(confidence, dtype=float), np.asarray(agreed, dtype=bool)
    if agreed.shape != confidence.shape:
        raise ValueError(f"{confidence.size} confidences but {agreed.size} agreement flags")
    clusters = Groups.of(groups, confidence.size)
    finite = np.isfinite(confidence)
    kept = finite[None, :] & (np.where(finite, confidence, -1.0)[None, :] >= THRESHOLDS[:, None])
    n_kept = kept.sum(axis=1)
    if clusters.clustered:
        bound = float(max_group_size or clusters.sizes.max())
        test = _group_test(kept, agreed, clusters, target, alpha, bound)
    else:
        test = _binomial_test(n_kept, (kept & agreed[None, :]).sum(axis=1), target, alpha)
    chosen: int | None = None
    # Kept sets are nested, so thresholds keeping as many items keep the same ones: test once.
    outcome: dict[int, bool | None] = {}
    for i in range(len(THRESHOLDS)):
        if n_kept[i] not in outcome:
            skip = n_kept[i] < min_kept or not test.testable(i)
            outcome[n_kept[i]] = None if skip else test.certified(i)
        if outcome[n_kept[i]] is None:
            continue
        if not outcome[n_kept[i]]:
            break
        chosen = i
    found = chosen is not None
    return ThresholdChoice(
        target=target,
        alpha=alpha,
        threshold=float(THRESHOLDS[chosen]) if found else None,
        n=len(confidence),
        n_kept=int(n_kept[chosen]) if found else 0,
        lower_bound=test.lower_bound(chosen) if found else None,
        method=test.method,
        n_groups=clusters.n_groups,
        n_groups_kept=int(np.count_nonzero(clusters.sums(kept[chosen]))) if found else 0,
    )


@dataclass(frozen=True)
class StageCalibration:
    """One cascade stage's dev items: ids, confidences (NaN: invalid), agreement, groups."""

    ids: Sequence[str]
    confidence: np.ndarray
    agreed: np.ndarray
    groups: Sequence[Hashable]


def certify_escalated(
    stages: Sequence[StageCalibration], *, target: float, alpha: float = 0.1
) -> list[ThresholdChoice]:
    """Each cascade stage's threshold, certified on the dev items that stage would receive.

    Stage 1 receives every item: its whole dev set. Stage j > 1 receives what stages 1..j-1 do
    not keep: the dev items common to stages 1..j whose confidence, at every earlier stage, is
    below that stage's certified threshold (invalid, or no threshold certified, escalates).
    The escalated set is fixed by thresholds chosen on the same dev items; the certificate holds
    given them.
    """
    choices: list[ThresholdChoice] = []
    escalated = set(stages[0].ids) if stages else set()
    for j, stage in enumerate(stages):
        threshold = choices[-1].threshold if j > 0 else None
        if threshold is not None:
            conf = np.nan_to_num(np.asarray(stages[j - 1].confidence, dtype=float), nan=-1.0)
            escalated -= {i for i, c in zip(stages[j - 1].ids, conf, strict=True) if c >= threshold}
        escalated &= set(stage.ids)
        rows = np.array([r for r, i in enumerate(stage.ids) if i in escalated], dtype=int)
        choices.append(
            select_threshold(
                np.asarray(stage.confidence, dtype=float)[rows],
                np.asarray(stage.agreed, dtype=bool)[rows],
                groups=[stage.groups[r] for r in rows],
                target=target,
                alpha=alpha,
            )
        )
    return choices


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
