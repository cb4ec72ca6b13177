"""From an item's label distribution to its verdict label: a tie is a tie, never the first label.

Pointwise: the unique most probable label; an exact tie between labels has no label (the item
stays valid, its expected score is still defined) and is reported as a tie.
Pairwise: "A", "B" or "tie". Roles are read from the label names, never their order. An item is
a tie when the rubric's "tie" label is at least as probable as A and as B, or when
P(A) / (P(A) + P(B)) lies within ``tie_band`` of 0.5 (so an exactly contradictory swap, [0.5, 0.5],
is a tie whatever the rubric lists).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

TIE = "tie"


@dataclass(frozen=True)
class Decisions:
    """Per item: ``labels`` (None = invalid, or a pointwise tie) and ``ties`` (a tie outcome)."""

    labels: list[str | None]
    ties: np.ndarray


def decide(
    probs: np.ndarray,
    labels: Sequence[str],
    mode: Literal["pointwise", "pairwise"],
    *,
    tie_band: float,
) -> Decisions:
    """Verdict labels for items x labels distributions (rows with NaN are invalid: label None)."""
    p = np.asarray(probs, dtype=float)
    valid = np.isfinite(p).all(axis=1)
    safe = np.where(valid[:, None], p, 0.0)
    names = list(labels)
    if mode == "pairwise":
        a, b = safe[:, names.index("A")], safe[:, names.index("B")]
        tie_p = safe[:, names.index(TIE)] if TIE in names else np.zeros(len(p))
        ab = a + b
        share = np.divide(a, ab, out=np.full(len(p), 0.5), where=ab > 0)
        ties = valid & ((tie_p >= np.maximum(a, b)) | (np.abs(share - 0.5) <= tie_band))
        winner = np.where(share > 0.5, "A", "B")
        out = [
            TIE if t else (str(w) if v else None)
            for v, t, w in zip(valid, ties, winner, strict=True)
        ]
        return Decisions(out, ties)
    top = safe.max(axis=1, keepdims=True)
    ties = valid & ((safe == top).sum(axis=1) > 1)
    best = safe.argmax(axis=1)
    out = [names[i] if v and not t else None for v, t, i in zip(valid, ties, best, strict=True)]
    return Decisions(out, ties)
