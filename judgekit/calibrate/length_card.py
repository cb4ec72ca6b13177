"""The frozen length model of a card: fitted on dev, stored in the card, measured on the split.

The maths (models, fits, the one correction rule) is ``judgekit.bias.length``; this module joins
it to calibration records and card fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from judgekit.bias import (
    PairwiseLengthModel,
    fit_pairwise_length,
    fit_pointwise_length,
)
from judgekit.bias.length import LengthModel, stored_length_model
from judgekit.calibrate.agreement import Calibrator, join_split
from judgekit.calibrate.outputs import JudgeOutputs, preference_for_a
from judgekit.cards.model import AgreementChange, Interval
from judgekit.data.sets import CalibrationRecord
from judgekit.data.split import require_dev


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


def card_length_fields(
    after: Calibrator,
    before: Calibrator | None,
    model: LengthModel,
    headline: dict[str, Interval | None],
) -> dict[str, Any]:
    """Card fields of a frozen length model: the stored model, and when the card applies it,
    the length slope and agreement of the same items before (``before``) and after it
    (``headline``: the card's own figures, measured on the corrected verdicts)."""
    scale = model.scale if isinstance(model, PairwiseLengthModel) else None
    fields: dict[str, Any] = {"length_model": stored_length_model(model)}
    if before is None:  # fitted but not applied: the verdicts keep their length effect
        fields["length_before"] = after.length(scale)
        return fields
    figures: dict[str, Interval | None] = {}
    for metric in headline:
        try:
            figures[metric] = (
                before.ordinal().weighted_kappa_quadratic
                if metric.startswith("quadratic")
                else before.kappas()[0]
            )
        except ValueError as err:
            before.notes.append(str(err))
    fields |= {
        "length_before": before.length(scale),
        "length_after": after.length(scale),
        "length_agreement": [
            AgreementChange(metric=metric, before=figures.get(metric), after=value)
            for metric, value in headline.items()
        ],
    }
    after.notes += [f"before the length correction: {note}" for note in before.notes]
    return fields
