"""Cards as cascade policies, and a cascade scored against human labels.

A stage's policy comes from its judge's card: the frozen learned ensemble gives the calibrated
distribution, and the threshold for a target agreement is chosen (fixed-sequence, exact binomial)
on the card's dev out-of-fold confidences, the same selection as the card's own abstention table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from judgekit.calibrate.abstain import (
    CONFIDENCE_RULE,
    ThresholdChoice,
    confidence,
    order_agreement,
    select_threshold,
)
from judgekit.calibrate.outputs import outputs_from_run
from judgekit.cards.model import CalibrationCard, Interval
from judgekit.data.sets import CalibrationRecord
from judgekit.judging.cascade import CascadeResult, StageDecision, StagePolicy
from judgekit.judging.results import JudgeRun
from judgekit.stats import bootstrap_ci, cohen_kappa, proportion_ci


class NoEnsembleError(ValueError):
    """The card has no learned ensemble (e.g. calibrated from hard verdicts without prompts)."""


def card_threshold(card: CalibrationCard, target: float, alpha: float = 0.1) -> ThresholdChoice:
    """The threshold certified for ``target`` on the card's dev confidences."""
    section = card.ensemble
    if section is None:
        raise NoEnsembleError(f"card {card.key[:12]} has no learned ensemble to abstain with")
    conf = np.array([np.nan if c is None else c for c in section.calibration_confidence])
    return select_threshold(conf, np.array(section.calibration_agreed), target=target, alpha=alpha)


def card_policy(card: CalibrationCard, target: float | None, alpha: float = 0.1) -> StagePolicy:
    """Decide with the card's frozen ensemble; keep items whose confidence clears the threshold
    certified for ``target`` (None: keep every valid verdict; no certified threshold: keep none).
    """
    if card.ensemble is None:
        raise NoEnsembleError(f"card {card.key[:12]} has no learned ensemble")
    choice = card_threshold(card, target, alpha) if target is not None else None

    def decide(run: JudgeRun) -> StageDecision:
        # the stage judged with the card's controls, so its verdicts are the card's
        outputs = outputs_from_run(run)
        conf = confidence(run.verdicts.probs, order_agreement(outputs))
        finite = np.isfinite(conf)
        if choice is None:
            keep, rule = finite, "learned ensemble, every valid verdict"
        elif choice.threshold is None:
            keep = np.zeros(len(conf), dtype=bool)
            rule = f"target {target:g} cannot be certified (alpha {alpha:g}): keeps nothing"
        else:
            keep = finite & (np.nan_to_num(conf, nan=-1.0) >= choice.threshold)
            rule = (
                f"learned ensemble, confidence >= {choice.threshold:.2f} (target {target:g}, "
                f"alpha {alpha:g}, dev lower bound {choice.lower_bound:.3f})"
            )
        return StageDecision(conf, keep, f"{rule}; confidence: {CONFIDENCE_RULE}")

    return decide


def cascade_agreement(
    result: CascadeResult,
    records: Sequence[CalibrationRecord],
    *,
    rng: np.random.Generator,
    n_resamples: int = 1000,
) -> dict[str, object]:
    """Agreement with the human consensus: on decided items, per stage, and kappa over all items
    (an item needing a human counts as its own category, i.e. as disagreement)."""
    by_id = {r.id: r for r in records if r.consensus is not None}
    rows = [row for row in result.items if row.item_id in by_id]
    human = [str(by_id[row.item_id].consensus) for row in rows]
    judged = [row.label if row.label is not None else "needs a human" for row in rows]
    categories = {c: i for i, c in enumerate(sorted(set(human) | set(judged)))}
    h = np.array([categories[c] for c in human])
    j = np.array([categories[c] for c in judged])
    labels = np.arange(len(categories))
    decided = np.array([row.decided_by is not None for row in rows])
    agree = h == j
    out: dict[str, object] = {
        "n": len(rows),
        "coverage": float(decided.mean()) if rows else 0.0,
        "agreement_decided": _rate(agree[decided]),
        "kappa_all": Interval.of(
            bootstrap_ci(
                lambda a, b: cohen_kappa(a, b, labels=labels), h, j,
                rng=rng, n_resamples=n_resamples,
            ),
            len(rows),
        ),
    }  # fmt: skip
    out["per_stage"] = {
        stage.name: _rate(agree[[row.decided_by == stage.name for row in rows]])
        for stage in result.stages
    }
    return out


def _rate(agree: np.ndarray) -> Interval | None:
    return (
        Interval.of(proportion_ci(int(agree.sum()), len(agree)), len(agree)) if len(agree) else None
    )
