"""The one verdict rule: an item's label distribution -> its label. A tie is a tie, never the
first label. Runs, calibration cards, abstention, cascades, gates, diff and the viewer all read
labels from here, and a card records the rule (``Controls``) it was measured under.

Pointwise (``Controls.pointwise_label``): ``argmax``, the unique most probable label (an exact tie
between labels has no label; the item stays valid, its expected score is still defined, and it is
reported as a tie), or ``nearest_score``, the label whose value is nearest the expected score
(an exact midpoint is a tie). Pairwise: "A", "B" or "tie". Roles are read from the label names,
never their order. An item is a tie when the rubric's "tie" label is at least as probable as A and
as B, or when P(A) / (P(A) + P(B)) lies within ``tie_band`` of 0.5 (so an exactly contradictory
swap, [0.5, 0.5], is a tie whatever the rubric lists).

Rates (``label_rates``) are shares of *all* items: invalid items are a category of their own and
never leave the denominator, so a candidate that makes items invalid cannot look better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from judgekit.schema import Controls, Mode
from judgekit.stats import share_ci

TIE = "tie"
INVALID = "invalid"


@dataclass(frozen=True)
class Decisions:
    """Per item: ``labels`` (None = invalid, or a pointwise tie) and ``ties`` (a tie outcome)."""

    labels: list[str | None]
    ties: np.ndarray


def decide(
    probs: np.ndarray,
    labels: Sequence[str],
    values: Sequence[float],
    mode: Mode,
    controls: Controls,
    scores: np.ndarray | None = None,
) -> Decisions:
    """Verdict labels for items x labels distributions (rows with NaN are invalid: label None).

    ``scores``: the items' final scores (a frozen length correction moves a pointwise score but
    not its distribution), read by the ``nearest_score`` rule; default: the expected scores.
    """
    p = np.asarray(probs, dtype=float)
    valid = np.isfinite(p).all(axis=1)
    safe = np.where(valid[:, None], p, 0.0)
    names = list(labels)
    if mode == "pairwise":
        a, b = safe[:, names.index("A")], safe[:, names.index("B")]
        tie_p = safe[:, names.index(TIE)] if TIE in names else np.zeros(len(p))
        ab = a + b
        share = np.divide(a, ab, out=np.full(len(p), 0.5), where=ab > 0)
        ties = valid & ((tie_p >= np.maximum(a, b)) | (np.abs(share - 0.5) <= controls.tie_band))
        winner = np.where(share > 0.5, "A", "B")
        out = [
            TIE if t else (str(w) if v else None)
            for v, t, w in zip(valid, ties, winner, strict=True)
        ]
        return Decisions(out, ties)
    if controls.pointwise_label == "nearest_score":
        scale = np.asarray(values, dtype=float)
        at = safe @ scale if scores is None else np.where(valid, np.asarray(scores), 0.0)
        distance = np.abs(at[:, None] - scale[None, :])
        closest = distance.min(axis=1, keepdims=True)
        ties = valid & (np.isclose(distance, closest, rtol=0, atol=1e-12).sum(axis=1) > 1)
        best = distance.argmin(axis=1)
    else:
        top = safe.max(axis=1, keepdims=True)
        ties = valid & ((safe == top).sum(axis=1) > 1)
        best = safe.argmax(axis=1)
    out = [names[i] if v and not t else None for v, t, i in zip(valid, ties, best, strict=True)]
    return Decisions(out, ties)


@dataclass(frozen=True)
class Rate:
    """A share of all items with its 95% interval."""

    label: str
    count: int
    rate: float
    low: float
    high: float


def rate_names(categories: Sequence[str]) -> list[str]:
    """The categories rates are reported for: the labels, then "tie" and "invalid"."""
    return [*categories, *(c for c in (TIE,) if c not in categories), INVALID]


def verdict_categories(
    labels: Sequence[str | None], valid: np.ndarray, ties: np.ndarray
) -> list[str]:
    """Each item's rate category: "invalid", "tie" (pointwise ties too), else its label."""
    return [
        INVALID if not ok else (TIE if tie else str(label))
        for label, ok, tie in zip(labels, valid, ties, strict=True)
    ]


def label_rates(
    labels: Sequence[str | None],
    valid: np.ndarray,
    ties: np.ndarray,
    categories: Sequence[str],
    groups: Sequence[str] | None = None,
) -> dict[str, Rate]:
    """Share of all items per verdict category (``categories``, then "tie" and "invalid"),
    with an interval that treats items sharing a group as one cluster (``stats.share_ci``).

    Pointwise ties (no label) count as "tie". The denominator is every item. With every item in
    one group no interval can be estimated: it is [0, 1].
    """
    names = rate_names(categories)
    outcome = np.array(verdict_categories(labels, valid, ties), dtype=object)
    out = {}
    for name in names:
        flags = outcome == name
        if len(flags) == 0:
            out[name] = Rate(name, 0, 0.0, 0.0, 0.0)
            continue
        ci = share_ci(flags, groups=groups)
        out[name] = Rate(name, int(flags.sum()), float(flags.mean()), ci.low, ci.high)
    return out
