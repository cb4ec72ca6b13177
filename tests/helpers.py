"""Shared test helpers: a card measured from given outputs, without a judge run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from judgekit.calibrate.measure.card import CardSubject, calibrate
from judgekit.calibrate.measure.outputs import JudgeOutputs
from judgekit.cards import CalibrationCard, CalibrationOptions
from judgekit.data.sets import CalibrationRecord
from judgekit.schema import JudgeIdentity


def card_for(
    records: Sequence[CalibrationRecord],
    outputs: JudgeOutputs,
    *,
    split: str = "all",
    resamples: int = 200,
    rubric_ref: str = "pairwise_preference@v1",
    rubric_hash: str = "r" * 64,
    fingerprint: str = "f" * 64,
    settings: dict[str, Any] | None = None,
    thresholds: Any = None,
    options: dict[str, Any] | None = None,
    **kw: Any,
) -> CalibrationCard:
    """``calibrate`` on ``outputs`` as a test judge's card (seed 0, ``resamples`` resamples)."""
    extra = {"thresholds": thresholds} if thresholds is not None else {}
    return calibrate(
        records,
        outputs,
        subject=CardSubject(
            rubric_ref=rubric_ref,
            rubric_hash=rubric_hash,
            judge=JudgeIdentity(
                backend="test",
                model=outputs.source,
                fingerprint=fingerprint,
                settings=settings or {},
            ),
            set_name="pandalm",
            set_sha256="s" * 64,
        ),
        options=CalibrationOptions(
            split=split,
            n_resamples=resamples,
            **extra,
            **(options or {}),  # type: ignore[arg-type]
        ),
        rng=np.random.default_rng(0),
        **kw,
    )


def length_corrected(outputs: JudgeOutputs, model: Any) -> JudgeOutputs:
    """``outputs`` as a run applying the frozen length ``model`` reports them (the one rule)."""
    from dataclasses import replace

    from judgekit.bias.length import correct_distributions

    assert outputs.lengths is not None
    probs, scores = correct_distributions(
        outputs.probs, outputs.scores, outputs.labels, outputs.values, outputs.lengths, model
    )
    return replace(outputs, probs=probs, scores=scores, source=f"{outputs.source}, corrected")


def card_with_length(
    records: Sequence[CalibrationRecord], outputs: JudgeOutputs, model: Any, **kw: Any
) -> CalibrationCard:
    """The card of a run that applies ``model``: headline on the corrected verdicts."""
    from judgekit.cards import CardControls

    applies = CardControls(
        controls=outputs.controls, variants=list(outputs.variant_probs), length_correction=True
    )
    return card_for(
        records,
        length_corrected(outputs, model),
        length_model=model,
        uncorrected=outputs,
        applies=applies,
        **kw,
    )
