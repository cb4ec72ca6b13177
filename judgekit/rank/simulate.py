"""Tournaments with known strengths: the ground truth that checks the statistics and the planner.

Each judged (question, pair) is a win, tie or loss whose expected score for A is exactly
sigmoid(theta_a - theta_b), so Bradley-Terry with half ties estimates the true strengths:
ties take a share ``tie_rate`` of the probability of the less likely side from both sides.
Each battle is judged ``repeats`` times (both answer orders, say), and with probability
``copy`` a repeat copies the first verdict, as a judge that sees the same two answers does:
verdicts on one question are correlated, which is what the question bootstrap accounts for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import expit

from judgekit.rank.battles import Battles

__all__ = ["draw_outcome", "outcome_oracle", "simulate_battles"]


def draw_outcome(d: np.ndarray, tie_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Win (1), tie (0.5) or loss (0) with E[outcome] = sigmoid(d)."""
    p = expit(d)
    tie = tie_rate * 2 * np.minimum(p, 1 - p)
    u = rng.random(np.shape(d))
    return np.where(u < p - tie / 2, 1.0, np.where(u < p + tie / 2, 0.5, 0.0))


def simulate_battles(
    theta: np.ndarray,
    n_questions: int,
    rng: np.random.Generator,
    *,
    baseline: int | None = None,
    tie_rate: float = 0.3,
    repeats: int = 2,
    copy: float = 0.5,
) -> Battles:
    """Every pair (or every model against ``baseline``) on every question, ``repeats`` times."""
    theta = np.asarray(theta, dtype=float)
    m = theta.size
    if baseline is None:
        a, b = np.triu_indices(m, k=1)
    else:
        b = np.delete(np.arange(m), baseline)
        a = np.full(b.size, baseline)
    q = np.repeat(np.arange(n_questions), a.size)
    a, b = np.tile(a, n_questions), np.tile(b, n_questions)
    first = draw_outcome(theta[a] - theta[b], tie_rate, rng)
    outcomes = [first]
    for _ in range(repeats - 1):
        fresh = draw_outcome(theta[a] - theta[b], tie_rate, rng)
        outcomes.append(np.where(rng.random(first.size) < copy, first, fresh))
    names = np.array([f"m{i:02d}" for i in range(m)], dtype=object)
    return Battles.build(
        np.tile(q, repeats).astype(str),
        names[np.tile(a, repeats)],
        names[np.tile(b, repeats)],
        np.concatenate(outcomes),
    )


def outcome_oracle(
    theta: np.ndarray, rng: np.random.Generator, tie_rate: float = 0.3
) -> Callable[[str, str, str], float]:
    """A battle-outcome callback for the adaptive planner: (question, model_a, model_b) -> outcome.

    Models are named ``m00``, ``m01``, ... as in ``simulate_battles``.
    """

    def judge(question: str, model_a: str, model_b: str) -> float:
        d = theta[int(model_a[1:])] - theta[int(model_b[1:])]
        return float(draw_outcome(np.array(d), tie_rate, rng))

    return judge
