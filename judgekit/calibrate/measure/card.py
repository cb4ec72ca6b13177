"""One calibration: the verdicts a run with the card makes + human records of a split -> a card.

The verdicts measured are final: the controls, frozen corrections and decision rule the card
applies (``CardControls``) already shaped them, so the card's kappa is the kappa of what a run
with this card reports. Labels come from the one decision rule (``JudgeOutputs.decisions``): a
judge tie is a tie (its own column in the confusion table, a disagreement with a human A or B),
an invalid verdict is its own category; agreement on decided items is reported with coverage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from judgekit._version import __version__
from judgekit.bias.length import LengthModel
from judgekit.calibrate.fit.length import card_length_fields
from judgekit.calibrate.measure.agreement import Calibrator, Joined, infer_label_type, join_split
from judgekit.calibrate.measure.outputs import JudgeOutputs
from judgekit.cards.model import (
    CalibrationCard,
    CalibrationOptions,
    CardControls,
    CeilingSummary,
    EnsembleCard,
    Interval,
    LabelType,
    SplitInfo,
    Verdict,
    card_key,
    verdict_settings,
)
from judgekit.cards.trust import decide_trust
from judgekit.data.sets import CalibrationRecord
from judgekit.data.split import DEFAULT_SALT
from judgekit.schema import JudgeIdentity
from judgekit.stats import share_ci

KAPPA_ALL = "kappa (ties and invalid verdicts as their own categories)"
QWK = "quadratic weighted kappa (decided verdicts)"


@dataclass(frozen=True)
class CardSubject:
    """What a card is about: rubric, judge (with its name, if named) and the human-labelled set."""

    rubric_ref: str
    rubric_hash: str
    judge: JudgeIdentity
    set_name: str
    set_sha256: str
    judge_name: str | None = None
    group_by: str = "item id"


@dataclass(frozen=True)
class Measured:
    """One split measured: the joined records, the calibrator holding their arrays, the card's
    agreement and length fields, the human label matrix, the human ceiling and the trust verdict
    they give."""

    joined: Joined
    calibrator: Calibrator
    fields: dict[str, Any]
    humans: np.ndarray
    ceiling: CeilingSummary | None
    verdict: Verdict


def calibrate(
    records: Sequence[CalibrationRecord],
    outputs: JudgeOutputs,
    *,
    subject: CardSubject,
    options: CalibrationOptions,
    rng: np.random.Generator,
    applies: CardControls | None = None,
    label_type: LabelType | None = None,
    uncorrected: JudgeOutputs | None = None,
    length_model: LengthModel | None = None,
    ensemble: EnsembleCard | None = None,
    notes: Sequence[str] = (),
) -> CalibrationCard:
    """Compare the judge's final verdicts with the human consensus on ``options.split``.

    Records without a consensus are left out (counted); records without a judge output count as
    invalid verdicts. ``label_type`` defaults to pairwise for pairwise items, else binary for two
    labels and ordinal otherwise. ``applies`` (default: the outputs' controls, every variant)
    is what a run with the card does. ``length_model`` is stored as fitted on dev; when
    ``applies.length_correction``, ``uncorrected`` holds the same verdicts before it, for the
    card's before/after figures. ``ensemble``: the learned-ensemble section
    (``calibrate.fit.ensemble_card``, computed on the raw outputs).
    """
    label_type = label_type or infer_label_type(records, outputs)
    applies = applies or CardControls(
        controls=outputs.controls, variants=list(outputs.variant_probs) or []
    )
    joined, c = _calibrator(records, outputs, options, label_type, rng, notes)
    fields = _figures(c, joined, options, applies, uncorrected, length_model, rng)
    measured = _trust(c, joined, fields, options)
    return _card(measured, subject, options, records, outputs, label_type, applies, ensemble)


def _calibrator(
    records: Sequence[CalibrationRecord],
    outputs: JudgeOutputs,
    options: CalibrationOptions,
    label_type: LabelType,
    rng: np.random.Generator,
    notes: Sequence[str],
) -> tuple[Joined, Calibrator]:
    """The split's records joined with the judge's outputs (2+ with a consensus needed)."""
    joined = join_split(records, outputs, options.split, options.heldout_fraction)
    if len(joined.records) < 2:
        raise ValueError(
            f"split {options.split!r} has {len(joined.records)} items with a consensus; need 2+"
        )
    c = Calibrator(joined, outputs, label_type, rng, options.n_resamples)
    c.notes.extend(notes)
    return joined, c


def _figures(
    c: Calibrator,
    joined: Joined,
    options: CalibrationOptions,
    applies: CardControls,
    uncorrected: JudgeOutputs | None,
    length_model: LengthModel | None,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The card's agreement fields and, with a length model, its before/after figures."""
    fields = _agreement_fields(c, options)
    headline = {KAPPA_ALL: fields["kappa"]}
    if fields["ordinal"] is not None:
        headline[QWK] = fields["ordinal"].weighted_kappa_quadratic
    fields |= _length_fields(c, joined, uncorrected, length_model, applies, headline, rng)
    if options.split != "heldout":
        c.notes.append(
            f"split {options.split!r} includes the dev items the card's controls were chosen "
            "and its corrections fitted on: its figures are in-sample there"
        )
    return fields


def _trust(
    c: Calibrator, joined: Joined, fields: dict[str, Any], options: CalibrationOptions
) -> Measured:
    """The human ceiling and the trust verdict the figures give under ``options.thresholds``."""
    humans = c.human_matrix()
    ceiling = c.ceiling(humans)
    verdict = decide_trust(
        n=len(c.records),
        invalid_rate=fields["invalid_rate"],
        trust_kappa=fields["trust_kappa"],
        trust_metric=fields["trust_metric"],
        ceiling_ratio=ceiling.ratio if ceiling else None,
        n_annotators=humans.shape[1],
        thresholds=options.thresholds,
    )
    if options.split != "heldout":
        verdict.reasons.append(
            f"NOTE: split {options.split!r} includes development items; only held-out cards "
            "are used by require_calibrated"
        )
    return Measured(joined, c, fields, humans, ceiling, verdict)


def _card(
    m: Measured,
    subject: CardSubject,
    options: CalibrationOptions,
    records: Sequence[CalibrationRecord],
    outputs: JudgeOutputs,
    label_type: LabelType,
    applies: CardControls,
    ensemble: EnsembleCard | None,
) -> CalibrationCard:
    """The card: subject, key, split, the measured figures and the per-variant and bias ones."""
    c, joined, humans = m.calibrator, m.joined, m.humans
    settings = verdict_settings(subject.judge.settings)
    key_options = options.model_dump(mode="json") | {"set": subject.set_name}
    reliability, ece = c.reliability()
    fields = {k: v for k, v in m.fields.items() if k != "trust_kappa"}
    return CalibrationCard(
        key=card_key(
            subject.rubric_hash,
            subject.judge.fingerprint,
            settings,
            key_options | {"set_sha256": subject.set_sha256},
        ),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        judgekit_version=__version__,
        rubric_ref=subject.rubric_ref,
        rubric_hash=subject.rubric_hash,
        judge_name=subject.judge_name,
        judge_model=subject.judge.model,
        judge_fingerprint=subject.judge.fingerprint,
        judge_settings=settings,
        set_name=subject.set_name,
        set_sha256=subject.set_sha256,
        options=options,
        label_type=label_type,
        outputs_source=outputs.source,
        split=SplitInfo(
            name=options.split,
            heldout_fraction=options.heldout_fraction,
            salt=DEFAULT_SALT,
            group_by=subject.group_by,
            n_groups=joined.n_groups,
            n_set=len(records),
            n_split=joined.n_split,
        ),
        n=len(c.records),
        n_no_consensus=joined.n_no_consensus,
        n_annotators=humans.shape[1],
        n_missing_outputs=int((joined.rows < 0).sum()),
        applies=applies,
        alpha=c.alpha(humans) if humans.shape[1] >= 1 else {},
        human_ceiling=m.ceiling,
        per_variant=c.per_variant(),
        position=c.position(),
        length=c.length(),
        variant_alpha=c.variant_alpha(),
        variance=c.variance(),
        reliability=reliability,
        expected_calibration_error=ece,
        notes=c.notes,
        thresholds=options.thresholds,
        verdict=m.verdict,
        ensemble=ensemble,
        **fields,
    )


def _agreement_fields(c: Calibrator, options: CalibrationOptions) -> dict[str, Any]:
    """Headline kappa, accuracy, agreement on decided items with coverage, confusion, ordinal."""
    n = len(c.records)
    n_invalid = int((~c.valid).sum())
    kappa, kappa_decided = c.kappas()
    ordinal = c.ordinal() if c.label_type == "ordinal" else None
    if ordinal is not None:
        trust_metric = QWK
        trust_kappa = ordinal.weighted_kappa_quadratic
    else:
        trust_metric, trust_kappa = KAPPA_ALL, kappa
    decided = c.decided
    agree_decided = int((c.judge_idx[decided] == c.human_idx[decided]).sum())
    return {
        "n_invalid": n_invalid,
        "invalid_rate": n_invalid / n,
        "headline": "kappa: judge ties and invalid verdicts counted as disagreement "
        "(categories of their own)",
        "kappa": kappa,
        "kappa_valid_only": kappa_decided,
        "trust_metric": trust_metric,
        "trust_kappa": trust_kappa,
        "accuracy": Interval.of(share_ci(c.judge_all == c.human_idx, groups=c.groups), n),
        "accuracy_valid_only": agree_decided / int(decided.sum()) if decided.any() else None,
        "agreement_decided": Interval.of(
            share_ci(c.judge_idx[decided] == c.human_idx[decided], groups=c.groups[decided]),
            int(decided.sum()),
        )
        if decided.any()
        else None,
        "coverage": float(decided.mean()),
        "confusion": c.confusion(),
        "ordinal": ordinal,
    }


def _length_fields(
    c: Calibrator,
    joined: Joined,
    uncorrected: JudgeOutputs | None,
    model: LengthModel | None,
    applies: CardControls,
    headline: dict[str, Interval | None],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The stored length model and, when applied, the figures before and after it."""
    if model is None:
        return {}
    applied = applies.length_correction and uncorrected is not None
    return card_length_fields(c, joined, model, headline, uncorrected if applied else None)
