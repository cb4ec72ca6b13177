"""A leaderboard: every model's score on one scale, with intervals, ranks and trust columns.

Scores are strengths anchored at the baseline (its score is fixed, as in Arena-Hard-Auto) or,
without one, at the mean model. Scales: ``elo`` = 1000 + 400/ln(10) * strength (Arena-Hard's
and LMArena's scale), ``strength`` = natural log-odds, ``win_rate`` = the predicted win rate
against the baseline in percent. Intervals are bootstrap percentiles of the anchored strength,
mapped through the scale (every scale is monotone, so the ranking never changes with it).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field
from scipy.special import expit

from judgekit.rank.battles import Battles
from judgekit.rank.bradley_terry import TieModel
from judgekit.rank.strengths import Strengths, Unit, fit_strengths
from judgekit.schema import StrictModel

__all__ = [
    "Coefficient",
    "JudgeStatus",
    "Leaderboard",
    "LeaderboardRow",
    "Scale",
    "leaderboard_from_strengths",
    "rank_battles",
]

Scale = Literal["elo", "strength", "win_rate"]
ELO = 400.0 / math.log(10.0)


class Coefficient(StrictModel):
    """An estimate with its bootstrap interval (style coefficients, tie parameter)."""

    name: str
    estimate: float
    low: float
    high: float


class JudgeStatus(StrictModel):
    """Which judge made the verdicts and what its calibration card says (shown on top)."""

    judge: str
    card: str


class LeaderboardRow(StrictModel):
    """One model. ``score``/``low``/``high`` are on the leaderboard's scale; rank 1 is best.

    Against a baseline, ``observed_win_rate`` is the plain mean verdict (ties half, a P(A)
    counts as given) in percent, ``standard_error`` its per-battle standard error and
    ``discrete_win_rate`` the same with each verdict rounded to win/tie/loss (AlpacaEval's
    three columns); ``lc_*`` is the length-controlled win rate when it was asked for.
    """

    model: str
    rank: int
    rank_low: int
    rank_high: int
    score: float
    low: float
    high: float
    win_rate: float | None = None
    win_rate_low: float | None = None
    win_rate_high: float | None = None
    observed_win_rate: float | None = None
    standard_error: float | None = None
    discrete_win_rate: float | None = None
    lc_win_rate: float | None = None
    lc_low: float | None = None
    lc_high: float | None = None
    lc_standard_error: float | None = None
    n_battles: int
    n_invalid: int
    n_questions: int
    flip_rate: float | None = None


class Leaderboard(StrictModel):
    """Rows best first, and everything needed to read them: method, scale, interval, judge."""

    method: str
    scale: str
    baseline: str | None
    level: float
    n_resamples: int
    n_failed: int
    unit: str
    n_battles: int
    n_questions: int
    rows: list[LeaderboardRow]
    ties: str | None = None
    seed: int | None = None
    tie_parameter: Coefficient | None = None
    style: list[Coefficient] = Field(default_factory=list)
    judge: JudgeStatus | None = None
    category: str | None = None
    notes: list[str] = Field(default_factory=list)


def percentiles(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided percentile interval ends of resamples (rows) at ``level``."""
    alpha = (1.0 - level) / 2
    return np.quantile(values, alpha, axis=0), np.quantile(values, 1 - alpha, axis=0)


def _to_scale(theta: np.ndarray, scale: Scale) -> np.ndarray:
    if scale == "elo":
        return 1000.0 + ELO * theta
    if scale == "win_rate":
        return 100.0 * expit(theta)
    return theta


def ranks(theta: np.ndarray) -> np.ndarray:
    """1 + how many models are strictly stronger, per row of ``theta`` (..., M)."""
    return 1 + (theta[..., None, :] > theta[..., :, None]).sum(axis=-1)


def _observed(battles: Battles, baseline: int | None) -> list[dict[str, float]]:
    """Per model: raw win rate over its valid battles (against the baseline when given)."""
    n = len(battles.models)
    model = np.r_[battles.model_a, battles.model_b]
    opponent = np.r_[battles.model_b, battles.model_a]
    y = np.r_[battles.outcome, 1.0 - battles.outcome]
    keep = np.r_[battles.valid, battles.valid]
    if baseline is not None:
        keep &= opponent == baseline
    model, y, w = model[keep], y[keep], np.r_[battles.weight, battles.weight][keep]
    total = np.bincount(model, w, n)
    count = np.bincount(model, minlength=n)
    discrete = np.where(y > 0.5, 1.0, np.where(y < 0.5, 0.0, 0.5))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(model, w * y, n) / total
        rate = np.bincount(model, w * discrete, n) / total
        spread = np.bincount(model, (y - mean[model]) ** 2, n) / (count - 1)
    unweighted = np.bincount(model, w != 1.0, n) == 0
    out: list[dict[str, float]] = []
    for m in range(n):
        row = {}
        if count[m]:
            row = {"observed_win_rate": 100.0 * mean[m], "discrete_win_rate": 100.0 * rate[m]}
            if baseline is not None and unweighted[m] and count[m] > 1:
                row["standard_error"] = 100.0 * math.sqrt(spread[m] / count[m])
        out.append({k: float(v) for k, v in row.items()})
    return out


def _flip_rate(battles: Battles, model: int) -> float | None:
    if battles.flip is None:
        return None
    involved = (battles.model_a == model) | (battles.model_b == model)
    known = battles.flip[involved]
    known = known[~np.isnan(known)]
    return float(known.mean()) if known.size else None


def leaderboard_from_strengths(
    battles: Battles,
    strengths: Strengths,
    *,
    baseline: str | None = None,
    scale: Scale = "elo",
    level: float = 0.95,
    **context: object,
) -> Leaderboard:
    """Anchor, scale and rank fitted strengths; ``context`` fills Leaderboard's other fields."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    if baseline is not None and baseline not in battles.models:
        raise ValueError(f"baseline {baseline!r} is not among the models {list(battles.models)}")
    if scale == "win_rate" and baseline is None:
        raise ValueError("the win_rate scale needs a baseline")
    base = None if baseline is None else battles.models.index(baseline)
    ok = ~np.isnan(strengths.boot).any(axis=1)

    def anchor(theta: np.ndarray) -> np.ndarray:
        ref = theta[..., [base]] if base is not None else theta.mean(axis=-1, keepdims=True)
        return theta - ref

    point, boot = anchor(strengths.theta), anchor(strengths.boot[ok])
    low, high = percentiles(boot, level)
    rank_boot = ranks(boot)
    alpha = (1.0 - level) / 2
    rank_low = np.quantile(rank_boot, alpha, axis=0, method="lower")
    rank_high = np.quantile(rank_boot, 1 - alpha, axis=0, method="higher")
    counts = battles.per_model_counts()
    observed = _observed(battles, base)
    rows = []
    for m, name in enumerate(battles.models):
        row: dict[str, object] = {
            "model": name,
            "rank": int(ranks(point)[m]),
            "rank_low": int(rank_low[m]),
            "rank_high": int(rank_high[m]),
            "score": float(_to_scale(point[m], scale)),
            "low": float(_to_scale(low[m], scale)),
            "high": float(_to_scale(high[m], scale)),
            "flip_rate": _flip_rate(battles, m),
            **{k: int(v) for k, v in counts.loc[name].items()},
            **observed[m],
        }
        if base is not None:
            row |= {
                "win_rate": float(_to_scale(point[m], "win_rate")),
                "win_rate_low": float(_to_scale(low[m], "win_rate")),
                "win_rate_high": float(_to_scale(high[m], "win_rate")),
            }
        rows.append(LeaderboardRow.model_validate(row))
    rows.sort(key=lambda r: (-r.score, r.model))
    return Leaderboard(
        method="bradley-terry" + (" + style control" if strengths.gamma is not None else ""),
        scale=scale,
        baseline=baseline,
        level=level,
        n_resamples=int(strengths.boot.shape[0]),
        n_failed=strengths.n_failed,
        unit=strengths.unit,
        n_battles=int(battles.valid.sum()),
        n_questions=len(battles.questions),
        rows=rows,
        ties=strengths.ties,
        tie_parameter=_tie_parameter(strengths, ok, level),
        style=_style(strengths, ok, level),
        **context,  # type: ignore[arg-type]
    )


def _tie_parameter(strengths: Strengths, ok: np.ndarray, level: float) -> Coefficient | None:
    if strengths.extra is None or strengths.boot_extra is None:
        return None
    low, high = percentiles(strengths.boot_extra[ok], level)
    if strengths.ties == "davidson":  # report nu, not log nu
        return Coefficient(
            name="nu", estimate=math.exp(strengths.extra), low=math.exp(low), high=math.exp(high)
        )
    return Coefficient(name="eta", estimate=strengths.extra, low=float(low), high=float(high))


def _style(strengths: Strengths, ok: np.ndarray, level: float) -> list[Coefficient]:
    if strengths.gamma is None or strengths.boot_gamma is None:
        return []
    low, high = percentiles(strengths.boot_gamma[ok], level)
    return [
        Coefficient(name=name, estimate=float(g), low=float(lo), high=float(hi))
        for name, g, lo, hi in zip(strengths.feature_names, strengths.gamma, low, high, strict=True)
    ]


def rank_battles(
    battles: Battles,
    *,
    baseline: str | None = None,
    scale: Scale = "elo",
    ties: TieModel = "half",
    style: bool = False,
    prior: float = 0.0,
    ridge: float = 0.0,
    level: float = 0.95,
    n_resamples: int = 1000,
    rng: np.random.Generator | None = None,
    unit: Unit = "question",
    counts: np.ndarray | None = None,
    **context: object,
) -> Leaderboard:
    """Fit Bradley-Terry (optionally style-controlled) with a clustered bootstrap, and rank."""
    strengths = fit_strengths(
        battles,
        ties=ties,
        style=style,
        prior=prior,
        ridge=ridge,
        n_resamples=n_resamples,
        rng=rng,
        unit=unit,
        counts=counts,
    )
    return leaderboard_from_strengths(
        battles, strengths, baseline=baseline, scale=scale, level=level, **context
    )
