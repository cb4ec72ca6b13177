"""A card's figures per slice of a meta column (``calibrate --by``): does the judge agree with
humans as well on every category, language or system?

Each slice is measured by the one card computation (``measure.card.calibrate``) on the records of
that slice, with the same verdicts, split and options, so a slice's kappa is the kappa its items
would get as a card of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from judgekit.calibrate.measure.card import CardSubject, calibrate
from judgekit.calibrate.measure.outputs import JudgeOutputs
from judgekit.cards.model import (
    CalibrationOptions,
    CardControls,
    Interval,
    LabelType,
    SliceAgreement,
)
from judgekit.data.records import InputError
from judgekit.data.sets import CalibrationRecord


def require_column(records: Sequence[CalibrationRecord], by: str) -> None:
    """Refuse (before anything is judged) a ``--by`` column no record has in its meta."""
    if not any(by in r.item.meta for r in records):
        columns = sorted({k for r in records for k in r.item.meta})
        raise InputError(f"--by {by}: no such meta column in the set; its columns are {columns}")


def slice_agreement(
    records: Sequence[CalibrationRecord],
    outputs: JudgeOutputs,
    by: str,
    *,
    subject: CardSubject,
    options: CalibrationOptions,
    applies: CardControls,
    label_type: LabelType,
) -> list[SliceAgreement]:
    """Per value of the items' meta column ``by`` (in order of first appearance), the card's
    headline figures on that slice (InputError when no record has the column)."""
    require_column(records, by)
    values = [str(r.item.meta.get(by)) if r.item.meta.get(by) is not None else "(none)"
              for r in records]  # fmt: skip
    out = []
    for value in dict.fromkeys(values):
        chosen = [r for r, v in zip(records, values, strict=True) if v == value]
        try:
            card = calibrate(
                chosen,
                outputs,
                subject=subject,
                options=options,
                rng=np.random.default_rng(options.seed),
                applies=applies,
                label_type=label_type,
            )
        except ValueError as err:
            out.append(SliceAgreement(column=by, value=value, n=len(chosen), invalid_rate=None,
                                      kappa=None, trust=None, accuracy=None,
                                      note=str(err)))  # fmt: skip
            continue
        out.append(
            SliceAgreement(
                column=by,
                value=value,
                n=card.n,
                invalid_rate=card.invalid_rate,
                kappa=card.kappa,
                trust=card.trust_figure(),
                accuracy=card.accuracy,
            )
        )
    return out


def format_slices(slices: Sequence[SliceAgreement]) -> list[str]:
    """The slices as text lines (intervals as the card computes them)."""
    if not slices:
        return []

    def f(i: Interval | None) -> str:
        return "n/a" if i is None else f"{i.estimate:.3f} [{i.low:.3f}, {i.high:.3f}]"

    lines = [f"by {slices[0].column}:"]
    for s in slices:
        if s.note is not None:
            lines.append(f"  {s.value[:24]:<24} n={s.n}: {s.note}")
            continue
        lines.append(
            f"  {s.value[:24]:<24} n={s.n:<4} kappa {f(s.kappa)}  trust figure {f(s.trust)}  "
            f"accuracy {f(s.accuracy)}  invalid {s.invalid_rate:.1%}"
        )
    return lines
