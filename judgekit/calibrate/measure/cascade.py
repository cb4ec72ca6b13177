"""Cards as cascade policies, and a cascade scored against human labels.

A stage's policy comes from its judge's card: the frozen learned ensemble gives the calibrated
distribution, and the threshold for a target agreement is chosen (``abstain.select_threshold``,
items of one group as one unit) on the card's dev out-of-fold confidences, the same selection as
the card's own abstention table. A later stage only ever sees what the earlier ones escalate,
which are the harder items, so its threshold is certified on those dev items alone
(``certify_stages``): certified on the whole dev set it would promise an agreement measured
mostly on items it never receives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from judgekit.bias.learned import learned_probs
from judgekit.calibrate.measure.abstain import (
    CONFIDENCE_RULE,
    StageCalibration,
    ThresholdChoice,
    certify_escalated,
    confidence,
    order_agreement,
    select_threshold,
)
from judgekit.calibrate.measure.outputs import outputs_from_run
from judgekit.cards.model import CalibrationCard, CardControls, EnsembleCard, Interval
from judgekit.cards.store import CardError, NamedCard
from judgekit.data.sets import CalibrationRecord
from judgekit.judging.cascade import CascadeResult, StageDecision, StagePolicy
from judgekit.judging.results import JudgeRun
from judgekit.stats import bootstrap_ci, cohen_kappa, share_ci


class NoEnsembleError(CardError):
    """The card has no learned ensemble (e.g. calibrated from hard verdicts without prompts)."""


class StageMismatchError(CardError):
    """Cascade cards that were not calibrated on the same set and split cannot share dev items."""


def _section(card: CalibrationCard) -> EnsembleCard:
    if card.ensemble is None:
        raise NoEnsembleError(f"card {card.key[:12]} has no learned ensemble to abstain with")
    return card.ensemble


def _confidences(section: EnsembleCard) -> np.ndarray:
    return np.array([np.nan if c is None else c for c in section.calibration_confidence])


def card_threshold(card: CalibrationCard, target: float, alpha: float = 0.1) -> ThresholdChoice:
    """The threshold certified for ``target`` on the card's dev confidences (a group as one unit
    where the card stores its dev groups; older cards without them: items as independent)."""
    section = _section(card)
    return select_threshold(
        _confidences(section),
        np.array(section.calibration_agreed),
        groups=section.calibration_groups or None,
        target=target,
        alpha=alpha,
    )


def certify_stages(
    cards: Sequence[CalibrationCard], target: float, alpha: float = 0.1
) -> list[ThresholdChoice]:
    """Thresholds for cascade stages 1..k (``cards`` in stage order), each certified on the dev
    items it would actually receive (``abstain.certify_escalated``).

    Stage 1 receives everything and is certified on its whole dev split, as ``card_threshold``.
    Stage j > 1 is certified only on the dev items common to the cards of stages 1..j that no
    earlier stage keeps at its certified threshold (a stage whose target cannot be certified
    keeps nothing, so it escalates all); groups stay one unit. Every card needs its dev ids and
    groups (``EnsembleCard.calibration_ids`` / ``calibration_groups``), and all must come from
    the same set (name, file hash) and split (fraction, salt, group key); otherwise
    ``StageMismatchError``. Pass each choice on: ``card_policy(card, target, alpha,
    choice=choices[j])``.
    """
    if not cards:
        raise ValueError("a cascade needs at least one stage card")
    _check_same_split(cards)
    stages = [
        StageCalibration(
            ids=s.calibration_ids,
            confidence=_confidences(s),
            agreed=np.array(s.calibration_agreed, dtype=bool),
            groups=s.calibration_groups,
        )
        for s in map(_section, cards)
    ]
    return certify_escalated(stages, target=target, alpha=alpha)


def _check_same_split(cards: Sequence[CalibrationCard]) -> None:
    """Raise unless every card has dev ids and groups from one set, split and grouping."""
    first = cards[0]
    for card in cards:
        section = _section(card)
        if not section.calibration_ids or not section.calibration_groups:
            raise StageMismatchError(
                f"card {card.key[:12]} stores no dev item ids/groups (calibrated before they "
                "were recorded): recalibrate it to certify a cascade stage on escalated items"
            )
        same = (
            card.set_name == first.set_name
            and card.set_sha256 == first.set_sha256
            and card.split.heldout_fraction == first.split.heldout_fraction
            and card.split.salt == first.split.salt
            and card.split.group_by == first.split.group_by
        )
        if not same:
            raise StageMismatchError(
                f"cards {first.key[:12]} ({first.set_name}, split salt {first.split.salt!r}, "
                f"held-out {first.split.heldout_fraction:g}) and {card.key[:12]} "
                f"({card.set_name}, split salt {card.split.salt!r}, held-out "
                f"{card.split.heldout_fraction:g}) were not calibrated on the same set and "
                "split: their dev items cannot be matched"
            )
    group_of: dict[str, str] = {}
    for card in cards:
        section = _section(card)
        for item_id, group in zip(section.calibration_ids, section.calibration_groups, strict=True):
            if group_of.setdefault(item_id, group) != group:
                raise StageMismatchError(
                    f"item {item_id!r} is in group {group_of[item_id]!r} on one card and "
                    f"{group!r} on card {card.key[:12]}: the cards group the set differently"
                )


def policy_card(named: NamedCard) -> NamedCard:
    """``named`` as a cascade stage runs it: the learned ensemble over the prompts it was fitted
    on (what ``card_policy`` decides with), whatever combination the card chose for plain runs
    (a card that chose one variant would otherwise judge too few prompts for the ensemble)."""
    section = _section(named.card)
    applies = named.card.applies
    learned = CardControls(
        controls=applies.controls.model_copy(update={"ensemble": "learned"}),
        variants=list(section.model.variants),
        length_correction=False,  # the learned ensemble has its own length term
        reasons=[*applies.reasons, "cascade stage: the learned ensemble its thresholds certify"],
    )
    return replace(named, card=named.card.model_copy(update={"applies": learned}))


def card_policy(
    card: CalibrationCard,
    target: float | None,
    alpha: float = 0.1,
    *,
    choice: ThresholdChoice | None = None,
) -> StagePolicy:
    """Decide with the card's frozen learned ensemble (the combination its abstention
    thresholds are certified for); keep items whose confidence clears the threshold certified
    for ``target`` (None: keep every valid verdict; no certified threshold: keep none).
    ``choice``: the certified threshold to use, e.g. from ``certify_stages`` for a later stage;
    default ``card_threshold(card, target, alpha)``.
    """
    model = _section(card).model
    if target is None:
        choice = None
    elif choice is None:
        choice = card_threshold(card, target, alpha)

    def decide(run: JudgeRun) -> StageDecision:
        outputs = outputs_from_run(run)
        probs = learned_probs(model, outputs.order_probs, outputs.labels, outputs.lengths)
        conf = confidence(probs, order_agreement(outputs))
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
        return StageDecision(conf, keep, f"{rule}; confidence: {CONFIDENCE_RULE}", probs)

    return decide


def cascade_agreement(
    result: CascadeResult,
    records: Sequence[CalibrationRecord],
    *,
    rng: np.random.Generator,
    n_resamples: int = 1000,
) -> dict[str, object]:
    """Agreement with the human consensus: on decided items, per stage, and kappa over all items
    (an item needing a human counts as its own category, i.e. as disagreement). Intervals treat
    the records' groups as the independent units (cluster bootstrap, clustered Wilson)."""
    by_id = {r.id: r for r in records if r.consensus is not None}
    rows = [row for row in result.items if row.item_id in by_id]
    groups = np.array([by_id[row.item_id].group for row in rows], dtype=object)
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
        "agreement_decided": _rate(agree, groups, decided),
        "kappa_all": Interval.of(
            bootstrap_ci(
                lambda a, b: cohen_kappa(a, b, labels=labels), h, j,
                rng=rng, groups=groups, n_resamples=n_resamples,
            ),
            len(rows),
        ),
    }  # fmt: skip
    out["per_stage"] = {
        stage.name: _rate(agree, groups, np.array([row.decided_by == stage.name for row in rows]))
        for stage in result.stages
    }
    return out


def _rate(agree: np.ndarray, groups: np.ndarray, mask: np.ndarray) -> Interval | None:
    n = int(mask.sum()) if mask.size else 0
    return Interval.of(share_ci(agree[mask], groups=groups[mask]), n) if n else None
