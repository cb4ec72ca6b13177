"""Battles to judge, as pairwise items, and the verdicts read back as battles.

``plan_battles`` turns answers (question_id, model, answer, question text) into one
``PairwiseItem`` per (question, model pair): every model against a named baseline (Arena-Hard
style; A is the candidate, B the baseline) or all pairs / k sampled pairs per question. Both
answer orders are the judge's business (its position-swap control); the plan keeps the map from
item id back to (question_id, model_a, model_b). ``battles_from_verdicts`` takes item-level
verdicts (a judgekit ``ItemVerdict``, a label A/B/tie, or P(A)) keyed by item id and returns
``Battles``; an item with no verdict or an invalid one is an invalid battle, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np

from judgekit.rank.battles import Battles
from judgekit.rank.style import style_features
from judgekit.schema import ItemVerdict, PairwiseItem, StrictModel

__all__ = ["Answer", "BattlePlan", "PlannedBattle", "battles_from_verdicts", "plan_battles"]

Verdict = ItemVerdict | float | str | None
LABELS = {"A": 1.0, "B": 0.0, "tie": 0.5}


class Answer(StrictModel):
    """One model's answer to one question (the input row of ``judgekit rank``)."""

    question_id: str
    question: str
    model: str
    answer: str
    category: str | None = None


class PlannedBattle(StrictModel):
    """Which item judges which battle."""

    item_id: str
    question_id: str
    model_a: str
    model_b: str
    category: str | None = None


@dataclass(frozen=True)
class BattlePlan:
    """Items to judge (in order) and, per item, the battle it decides; answers for style."""

    items: list[PairwiseItem]
    battles: list[PlannedBattle]
    answers: dict[tuple[str, str], str]


def _pairs(
    models: list[str],
    baseline: str | None,
    per_question: int | None,
    rng: np.random.Generator | None,
) -> list[tuple[str, str]]:
    if baseline is not None:
        return [(m, baseline) for m in models if m != baseline]
    pairs = list(combinations(models, 2))
    if per_question is None or per_question >= len(pairs):
        return pairs
    if rng is None:
        raise ValueError("sampling pairs needs rng")
    return [pairs[i] for i in sorted(rng.choice(len(pairs), size=per_question, replace=False))]


def plan_battles(
    answers: Sequence[Answer],
    *,
    baseline: str | None = None,
    pairs_per_question: int | None = None,
    rng: np.random.Generator | None = None,
) -> BattlePlan:
    """One item per (question, pair) for the questions every paired model answered."""
    by_question: dict[str, dict[str, Answer]] = {}
    for row in answers:
        seen = by_question.setdefault(row.question_id, {})
        if row.model in seen:
            raise ValueError(f"question {row.question_id!r}: two answers from {row.model!r}")
        seen[row.model] = row
    models = sorted({row.model for row in answers})
    if baseline is not None and baseline not in models:
        raise ValueError(f"baseline {baseline!r} has no answers; models are {models}")
    if len(models) < 2:
        raise ValueError(f"ranking needs at least two models, got {models}")
    items, planned = [], []
    for qid, rows in by_question.items():
        if baseline is not None and baseline not in rows:
            continue
        present = [m for m in models if m in rows]
        for a, b in _pairs(present, baseline, pairs_per_question, rng):
            item_id = f"{qid}::{a}::{b}"
            items.append(
                PairwiseItem(
                    id=item_id,
                    question=rows[a].question,
                    answer_a=rows[a].answer,
                    answer_b=rows[b].answer,
                )
            )
            planned.append(
                PlannedBattle(
                    item_id=item_id,
                    question_id=qid,
                    model_a=a,
                    model_b=b,
                    category=rows[a].category,
                )
            )
    if not items:
        raise ValueError("no question was answered by two models to compare")
    texts = {(row.question_id, row.model): row.answer for row in answers}
    return BattlePlan(items=items, battles=planned, answers=texts)


def _outcome(verdict: Verdict, use: Literal["label", "probability"]) -> tuple[float, float]:
    """(P(A) or label value, flip) for one verdict; NaN for an invalid one."""
    if verdict is None:
        return np.nan, np.nan
    if isinstance(verdict, ItemVerdict):
        flip = np.nan if verdict.flip is None else float(verdict.flip)
        if not verdict.valid:
            return np.nan, flip
        if use == "probability" and verdict.label_probs is not None:
            p = verdict.label_probs
            total = p.get("A", 0.0) + p.get("B", 0.0) + p.get("tie", 0.0)
            return (p.get("A", 0.0) + p.get("tie", 0.0) / 2) / total, flip
        return (LABELS.get(verdict.label, np.nan)), flip
    if isinstance(verdict, str):
        if verdict not in LABELS:
            raise ValueError(f"verdict {verdict!r} is not one of {sorted(LABELS)}")
        return LABELS[verdict], np.nan
    value = float(verdict)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"P(A) {value} is outside [0, 1]")
    return value, np.nan


def battles_from_verdicts(
    plan: BattlePlan,
    verdicts: Mapping[str, Verdict],
    *,
    use: Literal["label", "probability"] = "label",
    style: Sequence[str] = (),
    length: Callable[[str], int] = len,
) -> Battles:
    """Battles for every planned item; ``style`` names style features to compute."""
    unknown = set(verdicts) - {b.item_id for b in plan.battles}
    if unknown:
        raise ValueError(
            f"{len(unknown)} verdict(s) for items not in the plan, e.g. {min(unknown)!r}"
        )
    values = [_outcome(verdicts.get(b.item_id), use) for b in plan.battles]
    texts_a = [plan.answers[(b.question_id, b.model_a)] for b in plan.battles]
    texts_b = [plan.answers[(b.question_id, b.model_b)] for b in plan.battles]
    categories = [b.category for b in plan.battles]
    return Battles.build(
        [b.question_id for b in plan.battles],
        [b.model_a for b in plan.battles],
        [b.model_b for b in plan.battles],
        np.array([v[0] for v in values]),
        flip=np.array([v[1] for v in values]),
        lengths=np.array([[length(a), length(b)] for a, b in zip(texts_a, texts_b, strict=True)]),
        category=None if any(c is None for c in categories) else [str(c) for c in categories],
        features=style_features(texts_a, texts_b, length=length, features=style) if style else None,
        feature_names=tuple(style),
    )
