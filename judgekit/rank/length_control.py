"""AlpacaEval 2's length-controlled win rate against a baseline.

For each model, a logistic GLM of its verdicts against the baseline on
tanh(delta / sd(delta)) with delta = len(baseline answer) - len(model answer), an optional
per-question difficulty, and the model term; the LC win rate is the mean predicted win rate
with the length term at zero (Dubois et al. 2024, ``alpaca_eval/metrics/glm_winrate.py``).

What differs from AlpacaEval's fit, and why: AlpacaEval fits with an L1 penalty chosen by
5-fold cross-validation and adds the annotations of two "gamed" baseline variants as
regularising rows (``df_gamed.csv``), and reads instruction difficulties from a file on the
Hugging Face hub; judgekit fits the unpenalised maximum-likelihood GLM on the battles it is
given, takes difficulties as an argument (none: AlpacaEval's ``length_controlled_minimal``),
and gives a question-bootstrap interval besides AlpacaEval's standard error of the predictions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from judgekit.rank.battles import Battles
from judgekit.rank.contextual import fit_contextual
from judgekit.rank.leaderboard import Leaderboard
from judgekit.rank.strengths import cluster_counts

__all__ = ["LengthControlled", "add_length_control", "length_controlled_win_rates"]


@dataclass(frozen=True)
class LengthControlled:
    """One model's LC win rate (percent), interval, AlpacaEval's standard error, GLM weights."""

    model: str
    win_rate: float
    low: float
    high: float
    standard_error: float
    weights: dict[str, float]
    n_failed: int


def _design(
    battles: Battles, model: int, baseline: int, difficulty: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``model`` vs ``baseline``: question, outcome for the model, features, difficulty."""
    lengths = battles.lengths
    if lengths is None:
        raise ValueError("the length-controlled win rate needs answer lengths on the battles")
    as_a = (battles.model_a == model) & (battles.model_b == baseline)
    as_b = (battles.model_b == model) & (battles.model_a == baseline)
    rows = np.flatnonzero((as_a | as_b) & battles.valid)
    flip = as_b[rows]
    y = np.where(flip, 1.0 - battles.outcome[rows], battles.outcome[rows])
    own = np.where(flip, lengths[rows, 1], lengths[rows, 0])
    other = np.where(flip, lengths[rows, 0], lengths[rows, 1])
    delta = other - own
    sd = delta.std(ddof=1) if delta.size > 1 else 0.0
    length_term = np.tanh(delta / sd) if sd > 0 else np.zeros_like(delta)
    q = battles.question[rows]
    diff = np.zeros(rows.size) if difficulty is None else difficulty[q]
    features = np.column_stack([length_term] + ([] if difficulty is None else [diff]))
    return q, y, features, diff


def length_controlled_win_rates(
    battles: Battles,
    baseline: str,
    *,
    difficulty: Mapping[str, float] | None = None,
    n_resamples: int = 200,
    rng: np.random.Generator | None = None,
    level: float = 0.95,
) -> list[LengthControlled]:
    """LC win rate of every model that met ``baseline``; intervals resample questions."""
    if baseline not in battles.models:
        raise ValueError(f"baseline {baseline!r} is not among the models {list(battles.models)}")
    diff = None
    if difficulty is not None:
        missing = [q for q in battles.questions if q not in difficulty]
        if missing:
            raise ValueError(f"no difficulty for {len(missing)} question(s), e.g. {missing[0]!r}")
        diff = np.array([difficulty[q] for q in battles.questions], dtype=float)
    base = battles.models.index(baseline)
    rng = rng if rng is not None else np.random.default_rng(0)
    draws = cluster_counts(len(battles.questions), n_resamples, rng)
    names = ["length"] + ([] if diff is None else ["difficulty"])
    out = []
    for m, name in enumerate(battles.models):
        if m == base:
            continue
        q, y, features, d = _design(battles, m, base, diff)
        if y.size == 0:
            continue
        zeros, ones = np.zeros(y.size, int), np.ones(y.size, int)
        weights = np.vstack([np.ones(y.size), draws[:, q]])
        fit = fit_contextual(zeros, ones, features, y, weights, 2)
        if not fit.converged[0]:
            raise ValueError(f"{name}: the length-controlled GLM does not converge")
        slope = fit.gamma[:, 1:2] if diff is not None else np.zeros((weights.shape[0], 1))
        pred = expit(-fit.theta[:, 1:2] + slope * d[None])
        boot = 100 * pred[1:].mean(axis=1)
        boot = boot[np.isfinite(boot)]
        alpha = (1 - level) / 2
        coef = dict(zip(names, fit.gamma[0].tolist(), strict=True)) | {"model": -fit.theta[0, 1]}
        out.append(
            LengthControlled(
                model=name,
                win_rate=float(100 * pred[0].mean()),
                low=float(np.quantile(boot, alpha)),
                high=float(np.quantile(boot, 1 - alpha)),
                standard_error=float(100 * pred[0].std(ddof=1) / math.sqrt(y.size)),
                weights=coef,
                n_failed=int(n_resamples - boot.size),
            )
        )
    return out


def add_length_control(board: Leaderboard, results: list[LengthControlled]) -> Leaderboard:
    """The leaderboard with each model's LC win rate, interval and standard error filled in."""
    by_model = {r.model: r for r in results}
    rows = []
    for row in board.rows:
        lc = by_model.get(row.model)
        if lc is None:
            rows.append(row)
            continue
        rows.append(
            row.model_copy(
                update={
                    "lc_win_rate": lc.win_rate,
                    "lc_low": lc.low,
                    "lc_high": lc.high,
                    "lc_standard_error": lc.standard_error,
                }
            )
        )
    return board.model_copy(update={"rows": rows})
