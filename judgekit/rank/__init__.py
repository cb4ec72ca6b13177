"""Leaderboards: rank many models from battles (pairwise) or scores (pointwise).

Bradley-Terry with ties (half wins, Davidson, Rao-Kupper), anchored scales (Elo-like, win rate
against a baseline), intervals that resample questions, style control, AlpacaEval's
length-controlled win rate, adaptive choice of the next battles, and the reports: pure
statistics over arrays. ``rank_answers`` (``judged.py``) is the one door to judging: it plans
the battles as pairwise items (``plan_battles``), judges them with ``judging.judge`` and reads
the verdicts back (``battles_from_verdicts``).
"""

from judgekit.rank.adaptive import AdaptiveRun, Step, adaptive_rank, order_flips, propose
from judgekit.rank.battles import Battles
from judgekit.rank.bradley_terry import PairFit, TieModel, fit_pairs
from judgekit.rank.contextual import ContextualFit, fit_contextual
from judgekit.rank.judged import RankedRun, rank_answers
from judgekit.rank.leaderboard import (
    Coefficient,
    JudgeStatus,
    Leaderboard,
    LeaderboardRow,
    Scale,
    leaderboard_from_strengths,
    rank_battles,
)
from judgekit.rank.length_control import (
    LengthControlled,
    add_length_control,
    length_controlled_win_rates,
)
from judgekit.rank.outputs import write_reports
from judgekit.rank.pipeline import RankOptions, rank_pairwise, rank_pointwise
from judgekit.rank.plan import (
    Answer,
    BattlePlan,
    PlannedBattle,
    battles_from_verdicts,
    plan_battles,
)
from judgekit.rank.pointwise import pointwise_leaderboard
from judgekit.rank.read import read_answers, read_battles, read_scores
from judgekit.rank.report import to_json, to_markdown, to_table
from judgekit.rank.simulate import outcome_oracle, simulate_battles
from judgekit.rank.strengths import (
    Strengths,
    cluster_counts,
    counts_from_indices,
    fit_strengths,
)
from judgekit.rank.style import STYLE_FEATURES, markdown_counts, style_features

__all__ = [
    "STYLE_FEATURES",
    "AdaptiveRun",
    "Answer",
    "BattlePlan",
    "Battles",
    "Coefficient",
    "ContextualFit",
    "JudgeStatus",
    "Leaderboard",
    "LeaderboardRow",
    "LengthControlled",
    "PairFit",
    "PlannedBattle",
    "RankOptions",
    "RankedRun",
    "Scale",
    "Step",
    "Strengths",
    "TieModel",
    "adaptive_rank",
    "add_length_control",
    "battles_from_verdicts",
    "cluster_counts",
    "counts_from_indices",
    "fit_contextual",
    "fit_pairs",
    "fit_strengths",
    "leaderboard_from_strengths",
    "length_controlled_win_rates",
    "markdown_counts",
    "order_flips",
    "outcome_oracle",
    "plan_battles",
    "pointwise_leaderboard",
    "propose",
    "rank_answers",
    "rank_battles",
    "rank_pairwise",
    "rank_pointwise",
    "read_answers",
    "read_battles",
    "read_scores",
    "simulate_battles",
    "style_features",
    "to_json",
    "to_markdown",
    "to_table",
    "write_reports",
]
