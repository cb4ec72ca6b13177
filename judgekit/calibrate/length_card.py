"""The frozen length model of a card: fitted on dev, stored in the card, measured on the split.

The maths (models, fits, the one correction rule) is ``judgekit.bias.length``; this module joins
it to calibration records and card fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from judgekit.bias import (
    PairwiseLengthModel,
    PointwiseLengthModel,
    fit_pairwise_length,
    fit_pointwise_length,
)
from judgekit.bias.length import LengthModel, correct_distributions
from judgekit.calibrate.agreement import Calibrator, Joined, join_split
from judgekit.calibrate.card import AgreementChange, CalibrationCard, Interval
from judgekit.calibrate.outputs import JudgeOutputs, preference_for_a
from judgekit.data.sets import CalibrationRecord
from judgekit.data.split import require_dev

LENGTH_UNIT = "characters of the answer text"


def fit_length_model(
    records: Sequence[CalibrationRecord],
    outputs: JudgeOutputs,
    split: str,
    *,
    heldout_fraction: float = 0.5,
) -> LengthModel:
    """Fit the judge's length bias on the dev split; ``split="heldout"`` raises HeldOutError.

    Only dev records (``split_records``, by group) with a consensus are used, whatever ``records``
    holds, so held-out items can never shape the coefficients. Lengths are characters of the
    answer text (``outputs.lengths``), as everywhere in calibration. Pairwise: the soft
    preference for A of the final verdict on tanh((len_a - len_b) / sd). Pointwise: the expected
    score on log length with the human consensus as covariate, so that answers humans rate
    higher because they are longer and better are not penalised.
    """
    require_dev(split)
    if outputs.lengths is None:
        raise ValueError("the judge outputs carry no answer lengths")
    joined = join_split(records, outputs, "dev", heldout_fraction)
    present = joined.rows >= 0
    rows = np.maximum(joined.rows, 0)
    lengths = outputs.lengths[rows].astype(float)
    lengths[~present] = np.nan
    if lengths.ndim == 2:
        probs = np.where(present[:, None], outputs.probs[rows], np.nan)
        pref = preference_for_a(probs, outputs.labels)
        return fit_pairwise_length(pref, lengths[:, 0], lengths[:, 1])
    scores = np.where(present, outputs.scores[rows], np.nan)
    human = np.array([float(r.consensus) for r in joined.records])
    return fit_pointwise_length(scores, lengths, human)


def _stored_length_model(model: LengthModel) -> dict[str, Any]:
    kind = "pairwise" if isinstance(model, PairwiseLengthModel) else "pointwise"
    return {
        "kind": kind,
        "fitted_on": "dev",
        "n": model.n,
        "length_unit": LENGTH_UNIT,
        "coefficients": model.to_dict(),
    }


def load_length_model(card: CalibrationCard) -> LengthModel | None:
    """The card's frozen length model, to correct later runs with exactly these coefficients."""
    stored = card.length_model
    if stored is None:
        return None
    kinds = {"pairwise": PairwiseLengthModel, "pointwise": PointwiseLengthModel}
    return kinds[stored["kind"]].from_dict(stored["coefficients"])


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


def card_length_fields(
    c: Calibrator,
    joined: Joined,
    model: LengthModel,
    before: list[tuple[str, Interval | None]],
) -> dict[str, Any]:
    """Card fields of a frozen length model: the model, slopes and agreement before/after."""
    corrected = Calibrator(
        joined, _length_corrected(c.outputs, model), c.label_type, c.rng, c.n_resamples
    )
    scale = model.scale if isinstance(model, PairwiseLengthModel) else None
    after: dict[str, Interval | None] = {}
    try:
        kappa, _ = corrected.kappas()
        after["kappa (invalid counted as disagreement)"] = kappa
    except ValueError as err:
        corrected.notes.append(str(err))
    if c.label_type == "ordinal":
        after["quadratic weighted kappa (valid verdicts)"] = (
            corrected.ordinal().weighted_kappa_quadratic
        )
    fields = {
        "length_model": _stored_length_model(model),
        "length_before": c.length(scale),
        "length_after": corrected.length(scale),
        "length_agreement": [
            AgreementChange(metric=metric, before=value, after=after.get(metric))
            for metric, value in before
        ],
    }
    c.notes += [f"length-corrected: {note}" for note in corrected.notes]
    return fields
