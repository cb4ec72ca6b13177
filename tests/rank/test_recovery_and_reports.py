"""Known strengths are recovered; the reports show the numbers with what they depend on.

The coverage claim (>= 90% of true strengths inside 90% intervals) is checked over many seeds in
benchmarks/leaderboard_recovery.py; here a few seeds guard against a regression.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from judgekit.rank import (
    Battles,
    JudgeStatus,
    rank_battles,
    simulate_battles,
    to_json,
    to_markdown,
    to_table,
)
from judgekit.rank.html import to_html


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_known_strengths_are_recovered(seed: int) -> None:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 0.8, 8)
    battles = simulate_battles(theta, 150, rng)
    board = rank_battles(battles, scale="strength", level=0.9, n_resamples=300, rng=rng)
    truth = {f"m{i:02d}": t - theta.mean() for i, t in enumerate(theta)}
    scores = [r.score for r in board.rows]
    assert spearmanr(scores, [truth[r.model] for r in board.rows]).statistic >= 0.95
    inside = [r.low <= truth[r.model] <= r.high for r in board.rows]
    assert sum(inside) >= 6


def _board() -> object:
    battles = Battles.build(
        ["q1", "q1", "q2", "q2", "q3", "q3", "q4", "q4"],
        ["<b>x</b>", "y", "<b>x</b>", "y", "<b>x</b>", "y", "y", "<b>x</b>"],
        ["base"] * 8,
        [1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0, np.nan],
        flip=[0, 1, 0, 0, np.nan, 0, 1, np.nan],
    )
    return rank_battles(
        battles,
        baseline="base",
        n_resamples=50,
        rng=np.random.default_rng(0),
        prior=0.5,
        judge=JudgeStatus(judge="smollm2", card="no card for pairwise_preference@v2"),
    )


def test_table_markdown_json_and_html_carry_the_trust_columns() -> None:
    board = _board()
    table = to_table(board)
    assert "judge: smollm2; card: no card for pairwise_preference@v2" in table
    assert "anchored at baseline base" in table and "flip rate" in table
    x_row = next(r for r in board.rows if r.model == "<b>x</b>")
    assert (x_row.n_battles, x_row.n_invalid) == (4, 1)
    assert x_row.flip_rate == 0.0 and x_row.observed_win_rate == pytest.approx(200 / 3)
    md = to_markdown([board])
    assert md.count("\n|") == 2 + len(board.rows)
    assert json.loads(to_json([board]))[0]["rows"][0]["model"] == board.rows[0].model
    page = to_html([board])
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert page.count("<circle") == 3
