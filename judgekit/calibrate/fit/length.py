"""The frozen length model of a card: fitted on dev, decided on dev, stored, measured on the split.

The maths (models, fits, the one correction rule, the rule that decides whether to apply a
model) is ``judgekit.bias.length``; this module joins it to calibration records and card fields.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from judgekit.bias import (
    PairwiseLengthModel,
    fit_pairwise_length,
    fit_pointwise_length,
)
from judgekit.bias.length import (
    LengthDecision,
    LengthModel,
    correct_distributions,
    human_preference,
    length_decision,
    stored_length_model,
)
from judgekit.calibrate.measure.agreement import Calibrator, Joined, infer_label_type, join_split
from judgekit.calibrate.measure.outputs import JudgeOutputs, preference_for_a
from judgekit.cards.model import AgreementChange, Interval, LabelType
from judgekit.data.sets import CalibrationRecord
from judgekit.data.split import require_dev
from judgekit.stats import cohen_kappa

N_FOLDS = 5
_FOLD_SALT = "judgekit-length-cv-v1"


@dataclass(frozen=True)
class _DevRows:
    """The dev records with a consensus, aligned with the arrays the length fit reads."""

    joined: Joined
    target: np.ndarray  # pairwise: soft preference for A; pointwise: expected score
    lengths: np.ndarray  # (n, 2) or (n,), NaN where the judge has no output
    human: np.ndarray  # pairwise: +1 A / -1 B / 0 tie; pointwise: the consensus score
    groups: list[str]


def _dev_rows(
    records: Sequence[CalibrationRecord], outputs: JudgeOutputs, fraction: float
) -> _DevRows:
    if outputs.lengths is None:
        raise ValueError("the judge outputs carry no answer lengths")
    joined = join_split(records, outputs, "dev", fraction)
    present = joined.rows >= 0
    rows = np.maximum(joined.rows, 0)
    lengths = outputs.lengths[rows].astype(float)
    lengths[~present] = np.nan
    consensus = [r.consensus for r in joined.records]
    if lengths.ndim == 2:
        probs = np.where(present[:, None], outputs.probs[rows], np.nan)
        target, human = preference_for_a(probs, outputs.labels), human_preference(consensus)
    else:
        target = np.where(present, outputs.scores[rows], np.nan)
        human = np.array([float(c) for c in consensus])
    return _DevRows(joined, target, lengths, human, [r.group for r in joined.records])


def _fit(dev: _DevRows, keep: np.ndarray) -> LengthModel:
    """The length model on the ``keep`` rows of dev, the human label as covariate."""
    if dev.lengths.ndim == 2:
        return fit_pairwise_length(
            dev.target[keep], dev.lengths[keep, 0], dev.lengths[keep, 1], human=dev.human[keep]
        )
    return fit_pointwise_length(dev.target[keep], dev.lengths[keep], dev.human[keep])


def _group_folds(groups: Sequence[str], n_folds: int) -> np.ndarray:
    """Fold index per row: groups ordered by a salted hash and dealt round-robin, so a group
    never straddles folds, folds are balanced in groups and the order of rows does not matter."""

    def key(group: str) -> bytes:
        return hashlib.sha256(f"{_FOLD_SALT}\0{group}".encode()).digest()

    fold = {g: i % n_folds for i, g in enumerate(sorted(set(groups), key=key))}
    return np.array([fold[g] for g in groups], dtype=int)


def _agreement(joined: Joined, outputs: JudgeOutputs, label_type: LabelType) -> tuple[str, float]:
    """The card's trust metric as a point estimate (no bootstrap): what the decision protects."""
    c = Calibrator(joined, outputs, label_type, np.random.default_rng(0), 0)
    if label_type == "ordinal":
        d = c.decided
        kappa = cohen_kappa(
            c.human_idx[d], c.judge_idx[d], labels=np.arange(c.k), weights="quadratic"
        )
        return "quadratic weighted kappa (decided verdicts)", kappa
    kappa = cohen_kappa(c.human_idx, c.judge_all, labels=np.arange(c.k + 1))
    return "kappa (ties and invalid verdicts as their own categories)", kappa


def _cross_validated(
    dev: _DevRows, outputs: JudgeOutputs, folds: np.ndarray, label_type: LabelType
) -> float:
    """Dev agreement with each fold's verdicts corrected (``correct_distributions``) by a model
    fitted on the other folds: out-of-fold, like the held-out split will see it."""
    probs, scores = outputs.probs.copy(), outputs.scores.copy()
    judged = dev.joined.rows >= 0
    for f in np.unique(folds):
        try:
            fold_model = _fit(dev, folds != f)
        except ValueError as err:
            raise ValueError(f"fold {f}: {err}") from err
        inside = (folds == f) & judged
        rows = dev.joined.rows[inside]
        probs[rows], scores[rows] = correct_distributions(
            probs[rows],
            scores[rows],
            outputs.labels,
            outputs.values,
            dev.lengths[inside],
            fold_model,
        )
    return _agreement(dev.joined, replace(outputs, probs=probs, scores=scores), label_type)[1]


def _decide(
    dev: _DevRows, outputs: JudgeOutputs, model: LengthModel, n_folds: int
) -> LengthDecision:
    """``length_decision`` on dev's agreement as judged vs cross-validated over group folds."""
    folds = _group_folds(dev.groups, n_folds)
    used = len(np.unique(folds))
    label_type = infer_label_type(dev.joined.records, outputs)
    metric, before = _agreement(dev.joined, outputs, label_type)
    cv: tuple[float, float] | str = f"{used} dev group(s), need 2 folds"
    if used >= 2:
        try:
            cv = (before, _cross_validated(dev, outputs, folds, label_type))
        except ValueError as err:
            cv = str(err)
    return length_decision(model, cv, metric=f"dev cross-validated {metric}", n_folds=used)


def fit_length_model(
    records: Sequence[CalibrationRecord],
    outputs: JudgeOutputs,
    split: str,
    *,
    heldout_fraction: float = 0.5,
    n_folds: int = N_FOLDS,
) -> LengthModel:
    """Fit the judge's length bias on the dev split and decide whether to apply it.

    ``split="heldout"`` raises HeldOutError. Only dev records (``split_records``, by group)
    with a consensus are used, whatever ``records`` holds, so held-out items can never shape
    the coefficients or the decision. Lengths are characters of the answer text
    (``outputs.lengths``). Pairwise: the soft preference for A of the final verdict on
    tanh((len_a - len_b) / sd) with one intercept per human class (A, B, tie). Pointwise: the
    expected score on log length with the human consensus as covariate. Either way the slope is
    the judge's length effect beyond what humans prefer. The model's ``decision``
    (``length_decision``) applies it only when the slope's CI excludes 0 and agreement on dev,
    cross-validated over ``n_folds`` group folds, does not drop.
    """
    require_dev(split)
    dev = _dev_rows(records, outputs, heldout_fraction)
    model = _fit(dev, np.ones(len(dev.groups), dtype=bool))
    return replace(model, decision=_decide(dev, outputs, model, n_folds))


def card_length_fields(
    c: Calibrator,
    joined: Joined,
    model: LengthModel,
    headline: dict[str, Interval | None],
    uncorrected: JudgeOutputs | None,
) -> dict[str, Any]:
    """Card fields of a frozen length model: the model with its dev decision, and the length
    slope and agreement of the split's items without and with it. Applied (``uncorrected``
    given): ``c`` measures the corrected verdicts the card reports (``headline``), before is
    ``uncorrected``. Not applied: ``c`` is the verdicts as judged, and "after" says what
    applying it would have done."""
    applied = uncorrected is not None
    other = Calibrator(
        joined,
        uncorrected if applied else _length_corrected(c.outputs, model),
        c.label_type,
        c.rng,
        c.n_resamples,
    )
    before, after = (other, c) if applied else (c, other)
    figures = {metric: _figure(other, metric) for metric in headline}
    scale = model.scale if isinstance(model, PairwiseLengthModel) else None
    stored = stored_length_model(model)
    status = "applied" if applied else "NOT applied (after = if it were)"
    c.notes.append(
        f"length model fitted on {model.n} dev items (judged for the fit, not in this split's "
        f"figures), {status}: {stored['reason']}"
    )
    c.notes += [f"length model, other side: {note}" for note in other.notes]
    return {
        "length_model": stored,
        "length_before": before.length(scale, human=True),
        "length_after": after.length(scale, human=True),
        "length_agreement": [
            AgreementChange(
                metric=metric,
                before=figures[metric] if applied else value,
                after=value if applied else figures[metric],
            )
            for metric, value in headline.items()
        ],
    }


def _figure(c: Calibrator, metric: str) -> Interval | None:
    try:
        return (
            c.ordinal().weighted_kappa_quadratic
            if metric.startswith("quadratic")
            else c.kappas()[0]
        )
    except ValueError as err:
        c.notes.append(str(err))
        return None


def _length_corrected(outputs: JudgeOutputs, model: LengthModel) -> JudgeOutputs:
    """The verdicts with the frozen length effect removed (``correct_distributions``)."""
    if outputs.lengths is None:
        raise ValueError("the judge outputs carry no answer lengths")
    probs, scores = correct_distributions(
        outputs.probs, outputs.scores, outputs.labels, outputs.values, outputs.lengths, model
    )
    return replace(
        outputs, probs=probs, scores=scores, source=f"{outputs.source}, length-corrected"
    )
