"""Pointwise leaderboard: means per model, intervals over question resamples, invalid counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from judgekit.rank import pointwise_leaderboard


def _scores(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(40):
        ease = rng.normal()
        for m, skill in (("a", 0.5), ("b", 0.0), ("c", -0.8)):
            for _ in range(2):  # two samples per question: they stay together
                rows.append((f"q{q}", m, float(np.clip(3 + skill + ease + rng.normal(), 1, 5))))
    return pd.DataFrame(rows, columns=["question", "model", "score"])


def test_means_ranks_and_intervals() -> None:
    frame = _scores(0)
    frame.loc[[3, 10], "score"] = np.nan
    board = pointwise_leaderboard(
        frame.question, frame.model, frame.score, rng=np.random.default_rng(1), n_resamples=400
    )
    means = frame.groupby("model").score.mean()
    assert [r.model for r in board.rows] == ["a", "b", "c"]
    for row in board.rows:
        assert row.score == pytest.approx(means[row.model], abs=1e-12)
        assert row.low < row.score < row.high
        assert row.n_questions == 40
    assert sum(r.n_invalid for r in board.rows) == 2
    assert board.rows[0].rank_low == 1 and board.rows[-1].rank_high == 3


def test_interval_equals_a_loop_over_resampled_questions() -> None:
    frame = _scores(2)
    draws = np.random.default_rng(3).multinomial(40, np.full(40, 1 / 40), size=300)
    board = pointwise_leaderboard(
        frame.question, frame.model, frame.score, rng=np.random.default_rng(3), n_resamples=300
    )
    questions = sorted(frame.question.unique())
    boot = []
    for counts in draws:
        weight = frame.question.map(dict(zip(questions, counts, strict=True)))
        boot.append(
            (frame.score * weight).groupby(frame.model).sum() / weight.groupby(frame.model).sum()
        )
    boot = pd.DataFrame(boot)
    for row in board.rows:
        assert row.low == pytest.approx(boot[row.model].quantile(0.025), abs=1e-12)
        assert row.high == pytest.approx(boot[row.model].quantile(0.975), abs=1e-12)


def test_a_model_without_valid_scores_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no valid score for model\(s\) \['b'\]"):
        pointwise_leaderboard(["q1", "q1"], ["a", "b"], [3.0, np.nan], rng=np.random.default_rng(0))
