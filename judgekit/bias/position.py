"""Position-bias control for pairwise judging.

Every pairwise item is judged twice: AB (``answer_a`` shown first) and BA (answers swapped). The
BA distribution is mapped back to the original labels with :func:`unswap`, the two orders are
combined with :func:`combine_orders`, and :func:`position_stats` reports how much the order
mattered. Distributions are rows of probabilities over the rubric labels; an invalid verdict is a
row of NaN and is excluded and counted, never replaced by a default label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import logsumexp

from judgekit.stats import ConfidenceInterval, proportion_ci

__all__ = ["PositionStats", "combine_orders", "position_stats", "unswap"]

_TINY = np.finfo(float).tiny


def _rate(k: int, n: int, level: float) -> ConfidenceInterval | None:
    """Wilson interval for k of n, or None when nothing was counted (never a made-up rate)."""
    return proportion_ci(k, n, level) if n > 0 else None


def _label_index(labels: Sequence[str], k: int) -> tuple[int, int, int | None]:
    """Column indices of A, B and tie (None without a tie label), found by name.

    Roles are never inferred from the column order: a rubric may list "A", "tie", "B".
    """
    names = list(labels)
    if len(names) != k:
        raise ValueError(f"{k} probability columns but {len(names)} labels {names}")
    if not {"A", "B"} <= set(names) or not set(names) <= {"A", "B", "tie"}:
        raise ValueError(f"pairwise labels must be 'A', 'B' and optionally 'tie', got {names}")
    tie = names.index("tie") if "tie" in names else None
    return names.index("A"), names.index("B"), tie


def _as_matrix(p: np.ndarray) -> np.ndarray:
    arr = np.asarray(p, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"expected an (items x labels) array, got shape {arr.shape}")
    return arr


def _valid_rows(*arrays: np.ndarray) -> np.ndarray:
    """Items whose distribution is finite in every array (a NaN anywhere marks it invalid)."""
    return np.logical_and.reduce([np.isfinite(a).all(axis=1) for a in arrays])


def _winner(p: np.ndarray, a: int, b: int) -> np.ndarray:
    """Column of the answer a verdict picks: A or B if it is the unique argmax, else -1.

    Exact ties (e.g. the [0.5, 0.5] of fully contradictory orders) and tie-label wins are not
    decisive, so they neither count as a first- nor as a second-position pick.
    """
    top = p.max(axis=1, keepdims=True)
    unique = (p == top).sum(axis=1) == 1
    pick = p.argmax(axis=1)
    return np.where(unique & np.isin(pick, (a, b)), pick, -1)


def unswap(p_ba: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Express BA-order distributions in the original labels.

    In the BA prompt label "A" is the original ``answer_b``, so the A and B columns trade places;
    "tie" means the same thing in both orders and stays put.
    """
    arr = _as_matrix(p_ba)
    a, b, _ = _label_index(labels, arr.shape[1])
    out = arr.copy()
    out[:, [a, b]] = arr[:, [b, a]]
    return out


def combine_orders(
    p_ab: np.ndarray,
    p_ba_unswapped: np.ndarray,
    *,
    method: Literal["soft", "hard"] = "soft",
    labels: Sequence[str],
) -> np.ndarray:
    """Merge the AB and (unswapped) BA verdicts into one order-free distribution per item.

    ``soft`` averages the log-probabilities, i.e. takes the renormalised geometric mean. Why:
    a judge that multiplies the odds of whichever answer is shown first by ``c`` reports
    ``q_A * c`` vs ``q_B`` in AB and ``q_A`` vs ``q_B * c`` in BA (after unswapping). The geometric
    mean gives ``q_A * sqrt(c)`` vs ``q_B * sqrt(c)`` and the boost cancels exactly, whereas the
    arithmetic mean leaves a distortion that depends on ``q``. With a tie label the A:B ratio is
    always recovered exactly; the tie mass is also exact when the boost is symmetric (first
    ``* sqrt(c)``, second ``/ sqrt(c)``, tie untouched), i.e. a pure shift of the first-vs-second
    log-odds. Zero probabilities are floored at the smallest positive float so that fully
    contradictory verdicts ([1, 0] and [0, 1]) combine to [0.5, 0.5] rather than 0/0.

    ``hard`` is the FastChat / MT-Bench rule: if the two orders' argmax labels disagree the
    verdict is a tie (one-hot on "tie" if the rubric has it, else [0.5, 0.5]); if they agree it
    is the arithmetic mean of the two distributions.

    Rows that are NaN in either order stay NaN (invalid). ``labels`` names the columns; the A, B
    and tie roles are read from these names, so any column order works.
    """
    ab = _as_matrix(p_ab)
    ba = _as_matrix(p_ba_unswapped)
    if ab.shape != ba.shape:
        raise ValueError(f"shape mismatch: {ab.shape} vs {ba.shape}")
    _, _, tie = _label_index(labels, ab.shape[1])
    valid = _valid_rows(ab, ba)
    out = np.full(ab.shape, np.nan)
    x, y = ab[valid], ba[valid]
    if method == "soft":
        mean_log = 0.5 * (np.log(np.maximum(x, _TINY)) + np.log(np.maximum(y, _TINY)))
        out[valid] = np.exp(mean_log - logsumexp(mean_log, axis=1, keepdims=True))
    elif method == "hard":
        combined = 0.5 * (x + y)
        disagree = x.argmax(axis=1) != y.argmax(axis=1)
        tie_row = np.zeros(ab.shape[1])
        if tie is None:
            tie_row[:] = 0.5
        else:
            tie_row[tie] = 1.0
        combined[disagree] = tie_row
        out[valid] = combined
    else:
        raise ValueError(f"method must be 'soft' or 'hard', got {method!r}")
    return out


@dataclass(frozen=True)
class PositionStats:
    """How much the presentation order moved the judge, over the valid items.

    Per item (length n, NaN / False where invalid): ``p_a_ab`` = p(A | AB order), ``p_a_ba`` =
    p(A | BA order) with A the original ``answer_a`` in both, ``flip`` = the two orders' argmax
    labels disagree, ``valid`` = both orders produced a verdict.

    ``flip_rate``: share of valid items whose argmax changes with the order.

    ``first_pick_before``: over both orders of every valid item, the share of decisive verdicts
    (unique argmax on A or B; tie-label wins and exact ties excluded) that pick whichever answer
    was shown first (A in AB, B in BA). An order-blind judge scores 0.5 here whatever the data,
    so the gap from 0.5 is position bias.

    ``first_pick_after``: the combined verdict has no order, so it is measured as if presented
    in the AB order: the share of decisive combined verdicts that pick ``answer_a``, the answer
    shown first in the AB prompt. It is ~0.5 in a balanced design (``answer_a``/``answer_b``
    assigned at random); unlike the "before" rate it also moves with a genuine quality gap
    between the A and B slots, so read it against the design.

    Each rate is a Wilson interval at ``level`` (default 95%), or None when its denominator is 0.
    """

    p_a_ab: np.ndarray
    p_a_ba: np.ndarray
    flip: np.ndarray
    valid: np.ndarray
    flip_rate: ConfidenceInterval | None
    first_pick_before: ConfidenceInterval | None
    first_pick_after: ConfidenceInterval | None
    n_valid: int
    n_invalid: int


def position_stats(
    p_ab: np.ndarray,
    p_ba_unswapped: np.ndarray,
    *,
    method: Literal["soft", "hard"] = "soft",
    labels: Sequence[str],
    level: float = 0.95,
) -> PositionStats:
    """Flip rate and first-position pick rates before and after combining the two orders.

    ``method`` is the :func:`combine_orders` rule whose verdict the "after" rate describes.
    """
    ab = _as_matrix(p_ab)
    ba = _as_matrix(p_ba_unswapped)
    a, b, _ = _label_index(labels, ab.shape[1])
    combined = combine_orders(ab, ba, method=method, labels=labels)
    valid = _valid_rows(ab, ba)
    n_valid = int(valid.sum())

    flip = np.zeros(ab.shape[0], dtype=bool)
    flip[valid] = ab[valid].argmax(axis=1) != ba[valid].argmax(axis=1)

    win_ab, win_ba, win_comb = (_winner(p[valid], a, b) for p in (ab, ba, combined))
    first_picks = int(np.sum(win_ab == a) + np.sum(win_ba == b))
    decisive = int(np.sum(win_ab >= 0) + np.sum(win_ba >= 0))

    return PositionStats(
        p_a_ab=np.where(valid, ab[:, a], np.nan),
        p_a_ba=np.where(valid, ba[:, a], np.nan),
        flip=flip,
        valid=valid,
        flip_rate=_rate(int(flip.sum()), n_valid, level),
        first_pick_before=_rate(first_picks, decisive, level),
        first_pick_after=_rate(int(np.sum(win_comb == a)), int(np.sum(win_comb >= 0)), level),
        n_valid=n_valid,
        n_invalid=int(ab.shape[0] - n_valid),
    )
