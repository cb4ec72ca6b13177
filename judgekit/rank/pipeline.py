"""From battles (or pointwise scores) and options to leaderboards: overall and per category.

This is what ``judgekit rank`` calls; every leaderboard gets its own generator seeded from
``options.seed``, so a category's interval does not depend on which categories came before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from judgekit.rank.battles import Battles
from judgekit.rank.bradley_terry import TieModel
from judgekit.rank.leaderboard import JudgeStatus, Leaderboard, Scale, rank_battles
from judgekit.rank.length_control import add_length_control, length_controlled_win_rates
from judgekit.rank.pointwise import pointwise_leaderboard
from judgekit.rank.strengths import Unit
from judgekit.schema import StrictModel

__all__ = ["RankOptions", "rank_pairwise", "rank_pointwise"]


class RankOptions(StrictModel):
    """How to rank. ``style`` names style features to control for (empty: none);
    ``length_control`` adds AlpacaEval's LC win rate (needs a baseline and answer lengths);
    ``by_category`` adds one leaderboard per category after the overall one."""

    baseline: str | None = None
    scale: Scale = "elo"
    ties: TieModel = "half"
    style: tuple[str, ...] = ()
    length_control: bool = False
    prior: float = 0.0
    level: float = 0.95
    n_resamples: int = 1000
    unit: Unit = "question"
    seed: int = 0
    by_category: bool = False


def _groups(category: np.ndarray | None, by: bool) -> list[tuple[str | None, np.ndarray | None]]:
    if not by:
        return [(None, None)]
    if category is None:
        raise ValueError("--by category needs a category field in the judgments")
    return [(None, None)] + [(str(c), category == c) for c in sorted(set(category.tolist()))]


def rank_pairwise(
    battles: Battles,
    options: RankOptions,
    *,
    judge: JudgeStatus | None = None,
    difficulty: Mapping[str, float] | None = None,
) -> list[Leaderboard]:
    """Bradley-Terry leaderboards (plus LC win rates when asked) for battles."""
    if options.length_control and options.baseline is None:
        raise ValueError("the length-controlled win rate needs a baseline")
    boards = []
    for name, rows in _groups(battles.category, options.by_category):
        part = battles if rows is None else battles.subset(rows)
        board = rank_battles(
            part,
            baseline=options.baseline,
            scale=options.scale,
            ties=options.ties,
            style=bool(options.style),
            prior=options.prior,
            level=options.level,
            n_resamples=options.n_resamples,
            rng=np.random.default_rng(options.seed),
            unit=options.unit,
            seed=options.seed,
            judge=judge,
            category=name,
        )
        if options.length_control and options.baseline is not None:
            results = length_controlled_win_rates(
                part,
                options.baseline,
                difficulty=difficulty,
                n_resamples=options.n_resamples,
                rng=np.random.default_rng(options.seed),
                level=options.level,
            )
            board = add_length_control(board, results)
        boards.append(board)
    return boards


def rank_pointwise(
    question: Sequence[str],
    model: Sequence[str],
    score: Sequence[float] | np.ndarray,
    options: RankOptions,
    *,
    category: Sequence[str] | None = None,
    judge: JudgeStatus | None = None,
) -> list[Leaderboard]:
    """Mean-score leaderboards from pointwise judgments."""
    q, m, s = np.asarray(question, object), np.asarray(model, object), np.asarray(score, float)
    cats = None if category is None else np.asarray(category, object)
    boards = []
    for name, rows in _groups(cats, options.by_category):
        keep = slice(None) if rows is None else rows
        boards.append(
            pointwise_leaderboard(
                q[keep],
                m[keep],
                s[keep],
                rng=np.random.default_rng(options.seed),
                n_resamples=options.n_resamples,
                level=options.level,
                seed=options.seed,
                judge=judge,
                category=name,
            )
        )
    return boards
