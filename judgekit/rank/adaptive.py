"""Adaptive comparisons: judge next where adjacent models are least surely ordered.

A pure planner over a battle-outcome callback ``(question, model_a, model_b) -> P(A) or None``
(None: the judge abstained; the battle is spent and counted invalid). After a warm-up ring that
connects every model, each round fits Bradley-Terry with the question bootstrap, orders the
models, and measures for every adjacent pair how often the resamples reverse it. The ranking is
stable at ``confidence`` when every one of the M - 1 adjacent orders is reversed in at most
(1 - confidence) / (M - 1) of the resamples (Bonferroni: all of them hold together); pairs above
that are unresolved, and the next battles go to them, most ambiguous first, each on a question
that pair has not met. It stops when the ranking is stable, when ``budget`` battles are spent,
or when the unresolved pairs have met on every question.

A per-pair threshold of 1 - confidence is not enough: each pair is then sampled until it just
crosses it, and with many looks and many pairs the whole order is wrong far more often than
1 - confidence (measured in benchmarks/leaderboard_adaptive.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from judgekit.rank.battles import Battles
from judgekit.rank.leaderboard import Leaderboard, leaderboard_from_strengths
from judgekit.rank.strengths import Strengths, fit_strengths

__all__ = ["AdaptiveRun", "Step", "adaptive_rank", "order_flips", "propose", "stability_threshold"]

Outcome = Callable[[str, str, str], float | None]
Proposal = tuple[str, str, str]
#: Judges a round's proposals at once (a judge run), one P(A) or None per proposal.
Outcomes = Callable[[list[Proposal]], list[float | None]]


@dataclass(frozen=True)
class Step:
    """State after a round: battles judged so far, stability, the least sure adjacent pair."""

    n_judged: int
    stable: bool
    worst_pair: tuple[str, str]
    worst_flip: float


@dataclass(frozen=True)
class AdaptiveRun:
    battles: Battles
    leaderboard: Leaderboard
    steps: list[Step]
    stopped: Literal["stable", "budget", "exhausted"]


def stability_threshold(n_models: int, confidence: float) -> float:
    """Largest share of reversing resamples each adjacent pair may have in a stable ranking."""
    return (1.0 - confidence) / max(n_models - 1, 1)


def order_flips(strengths: Strengths) -> tuple[np.ndarray, np.ndarray]:
    """Models best first, and per adjacent pair the share of resamples that reverse it."""
    order = np.argsort(-strengths.theta, kind="stable")
    boot = strengths.boot[~np.isnan(strengths.boot).any(axis=1)]
    flips = (boot[:, order[1:]] >= boot[:, order[:-1]]).mean(axis=0)
    return order, flips


def propose(
    battles: Battles,
    questions: Sequence[str],
    n: int,
    rng: np.random.Generator,
    *,
    confidence: float = 0.95,
    prior: float = 0.1,
    n_resamples: int = 500,
) -> tuple[list[Proposal], Step, Strengths]:
    """Up to ``n`` next battles (question, model_a, model_b) and the current state."""
    strengths = fit_strengths(battles, prior=prior, n_resamples=n_resamples, rng=rng)
    order, flips = order_flips(strengths)
    names = battles.models
    worst = int(np.argmax(flips))
    threshold = stability_threshold(len(names), confidence)
    step = Step(
        n_judged=len(battles),
        stable=bool((flips <= threshold).all()),
        worst_pair=(names[order[worst]], names[order[worst + 1]]),
        worst_flip=float(flips[worst]),
    )
    met: dict[tuple[str, str], set[str]] = {}
    for q, a, b in zip(battles.question, battles.model_a, battles.model_b, strict=True):
        met.setdefault(tuple(sorted((names[a], names[b]))), set()).add(battles.questions[q])
    open_pairs = []
    for i in np.argsort(-flips, kind="stable"):
        if flips[i] <= threshold:
            break
        pair = tuple(sorted((names[order[i]], names[order[i + 1]])))
        fresh = [q for q in questions if q not in met.get(pair, set())]
        if fresh:
            open_pairs.append((pair, list(rng.permutation(fresh))))
    proposals: list[Proposal] = []
    while len(proposals) < n and any(fresh for _, fresh in open_pairs):
        for pair, fresh in open_pairs:
            if fresh and len(proposals) < n:
                a, b = pair if rng.random() < 0.5 else pair[::-1]
                proposals.append((str(fresh.pop()), a, b))
    return proposals, step, strengths


def _warmup(
    models: Sequence[str], questions: Sequence[str], per_pair: int, rng: np.random.Generator
) -> list[Proposal]:
    ring = list(rng.permutation(list(models)))
    out = []
    for i, a in enumerate(ring):
        b = ring[(i + 1) % len(ring)]
        for q in rng.choice(list(questions), size=min(per_pair, len(questions)), replace=False):
            out.append((str(q), str(a), str(b)))
    return out


def adaptive_rank(
    models: Sequence[str],
    questions: Sequence[str],
    outcome: Outcome | None = None,
    *,
    outcomes: Outcomes | None = None,
    budget: int,
    rng: np.random.Generator,
    batch: int | None = None,
    confidence: float = 0.95,
    warmup: int = 3,
    prior: float = 0.1,
    n_resamples: int = 500,
) -> AdaptiveRun:
    """Judge battles chosen round by round until the ranking is stable or ``budget`` is spent.

    ``outcome`` judges one battle at a time; ``outcomes`` a round's battles at once.
    """
    if (outcome is None) == (outcomes is None):
        raise ValueError("give outcome (one battle) or outcomes (a round), not both")
    if len(set(models)) < 2:
        raise ValueError("ranking needs at least two models")
    batch = batch or max(len(models), 10)
    judged: list[tuple[str, str, str, float]] = []

    def judge(proposals: list[Proposal]) -> None:
        chosen = proposals[: budget - len(judged)]
        values = outcomes(chosen) if outcomes is not None else [outcome(*p) for p in chosen]  # type: ignore[misc]
        for (q, a, b), value in zip(chosen, values, strict=True):
            judged.append((q, a, b, np.nan if value is None else float(value)))

    def current() -> Battles:
        q, a, b, y = zip(*judged, strict=True)
        return Battles.build(q, a, b, np.array(y))

    judge(_warmup(models, questions, warmup, rng))
    steps: list[Step] = []
    stopped: Literal["stable", "budget", "exhausted"] = "budget"
    while True:
        proposals, step, strengths = propose(
            current(),
            questions,
            batch,
            rng,
            confidence=confidence,
            prior=prior,
            n_resamples=n_resamples,
        )
        steps.append(step)
        if step.stable:
            stopped = "stable"
            break
        if len(judged) >= budget:
            break
        if not proposals:
            stopped = "exhausted"
            break
        judge(proposals)
    battles = current()
    board = leaderboard_from_strengths(
        battles, strengths, level=confidence, notes=[f"adaptive: stopped ({stopped})"]
    )
    return AdaptiveRun(battles=battles, leaderboard=board, steps=steps, stopped=stopped)
