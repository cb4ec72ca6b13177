"""Pointwise leaderboard: each model's mean score, with intervals that resample questions.

Scores come from a pointwise run (one or more judgments per question and model). All models are
resampled with the same questions, so the intervals and the rank intervals respect that every
model answered the same questions; several scores of one model on one question (variants,
samples) stay together. A missing or invalid score (NaN) is counted, never filled in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from judgekit.rank.leaderboard import Leaderboard, LeaderboardRow, percentiles, ranks
from judgekit.rank.strengths import cluster_counts

__all__ = ["pointwise_leaderboard"]


def pointwise_leaderboard(
    question: Sequence[str],
    model: Sequence[str],
    score: Sequence[float] | np.ndarray,
    *,
    rng: np.random.Generator,
    n_resamples: int = 1000,
    level: float = 0.95,
    **context: object,
) -> Leaderboard:
    """Mean score per model (valid scores only), percentile intervals over question resamples."""
    frame = pd.DataFrame({"q": list(question), "m": list(model), "s": np.asarray(score, float)})
    if frame.empty:
        raise ValueError("no scores")
    q_codes, questions = pd.factorize(frame["q"], sort=True)
    m_codes, models = pd.factorize(frame["m"], sort=True)
    valid = ~frame["s"].isna().to_numpy()
    shape = (len(questions), len(models))
    sums, counts = np.zeros(shape), np.zeros(shape)
    np.add.at(sums, (q_codes[valid], m_codes[valid]), frame["s"].to_numpy()[valid])
    np.add.at(counts, (q_codes[valid], m_codes[valid]), 1.0)
    if (counts.sum(axis=0) == 0).any():
        empty = [str(models[i]) for i in np.flatnonzero(counts.sum(axis=0) == 0)]
        raise ValueError(f"no valid score for model(s) {empty}")
    point = sums.sum(axis=0) / counts.sum(axis=0)
    draws = cluster_counts(len(questions), n_resamples, rng).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (draws @ sums) / (draws @ counts)
    ok = np.isfinite(boot).all(axis=1)
    n_failed = int((~ok).sum())
    if n_failed * 2 > n_resamples:
        raise ValueError(f"a model had no scores in {n_failed} of {n_resamples} resamples")
    low, high = percentiles(boot[ok], level)
    rank_boot = ranks(boot[ok])
    alpha = (1 - level) / 2
    rank_low = np.quantile(rank_boot, alpha, axis=0, method="lower")
    rank_high = np.quantile(rank_boot, 1 - alpha, axis=0, method="higher")
    point_ranks = ranks(point)
    rows = [
        LeaderboardRow(
            model=str(name),
            rank=int(point_ranks[m]),
            rank_low=int(rank_low[m]),
            rank_high=int(rank_high[m]),
            score=float(point[m]),
            low=float(low[m]),
            high=float(high[m]),
            n_battles=int((m_codes == m).sum()),
            n_invalid=int(((m_codes == m) & ~valid).sum()),
            n_questions=int((counts[:, m] > 0).sum()),
        )
        for m, name in enumerate(models)
    ]
    rows.sort(key=lambda r: (-r.score, r.model))
    return Leaderboard(
        method="mean score",
        scale="mean",
        baseline=None,
        level=level,
        n_resamples=n_resamples,
        n_failed=n_failed,
        unit="question",
        n_battles=int(valid.sum()),
        n_questions=len(questions),
        rows=rows,
        **context,  # type: ignore[arg-type]
    )
