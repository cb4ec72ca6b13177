"""One calibration: judge outputs + human records of a split -> a card with a trust verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from judgekit._version import __version__
from judgekit.bias.length import LengthModel
from judgekit.calibrate.agreement import Calibrator, infer_label_type, join_split
from judgekit.calibrate.card import (
    CalibrationCard,
    Interval,
    LabelType,
    Setting,
    SplitInfo,
    SplitName,
    card_key,
    verdict_settings,
)
from judgekit.calibrate.ensemble_card import ensemble_card
from judgekit.calibrate.ensemble_fit import FittedEnsemble
from judgekit.calibrate.length_card import card_length_fields
from judgekit.calibrate.outputs import JudgeOutputs
from judgekit.calibrate.trust import TrustThresholds, decide_trust
from judgekit.data.sets import CalibrationRecord
from judgekit.data.split import DEFAULT_SALT
from judgekit.stats import (
    proportion_ci,
)


def calibrate(
    records: Sequence[CalibrationRecord],
    outputs: JudgeOutputs,
    *,
    rubric_ref: str,
    rubric_hash: str,
    judge_model: str,
    judge_fingerprint: str,
    judge_settings: Mapping[str, Setting] | None = None,
    set_name: str,
    set_sha256: str,
    split: SplitName,
    heldout_fraction: float = 0.5,
    group_by: str = "item id",
    rng: np.random.Generator,
    n_resamples: int = 2000,
    thresholds: TrustThresholds | None = None,
    label_type: LabelType | None = None,
    length_model: LengthModel | None = None,
    ensemble: FittedEnsemble | None = None,
    dev_records: Sequence[CalibrationRecord] = (),
) -> CalibrationCard:
    """Compare a judge's verdicts with the human consensus on one split and decide trust.

    Records without a consensus are left out (counted); records without a judge output count as
    invalid verdicts. Pairwise and binary sets use the judge's argmax label, ordinal sets its
    expected score rounded to the nearest label value. ``label_type`` defaults to pairwise for
    pairwise items, else binary for two labels and ordinal otherwise. ``judge_settings`` (the
    judge identity's settings; none for verdicts read from a file) are keyed in their verdict-
    changing part; ``group_by`` names the records' split group key (the set's ``split_group``).

    ``length_model`` (from ``fit_length_model`` on dev, or ``load_length_model`` of an earlier
    card) is stored in the card as fitted on dev and applied as frozen: the card gets the
    split's length slope and agreement before and after the correction, never a refit.

    ``ensemble`` (``fit_ensemble`` on dev) adds the card's ensemble section: every combination
    compared on ``dev_records`` (out-of-fold for the learned one) and on this split, the choice,
    calibration and abstention thresholds (``calibrate.ensemble_card``).
    """
    thresholds = thresholds or TrustThresholds()
    label_type = label_type or infer_label_type(records, outputs)
    joined = join_split(records, outputs, split, heldout_fraction)
    if len(joined.records) < 2:
        raise ValueError(
            f"split {split!r} has {len(joined.records)} items with a consensus; need 2+"
        )
    c = Calibrator(joined, outputs, label_type, rng, n_resamples)
    n = len(c.records)
    n_invalid = int((~c.valid).sum())
    kappa, kappa_valid = c.kappas()
    correct = int((c.judge_all == c.human_idx).sum())
    humans = c.human_matrix()
    ordinal = c.ordinal() if label_type == "ordinal" else None
    ceiling = c.ceiling(humans)
    if ordinal is not None:
        trust_metric = "quadratic weighted kappa (valid verdicts)"
        trust_kappa = ordinal.weighted_kappa_quadratic
    else:
        trust_metric, trust_kappa = "kappa (invalid counted as disagreement)", kappa
    reliability, ece = c.reliability()
    variant_alpha, variance = c.variant_alpha(), c.variance()
    length_fields: dict[str, Any] = {}
    if length_model is not None:
        before = [
            (trust_metric, trust_kappa),
            *([("kappa (invalid counted as disagreement)", kappa)] if ordinal else []),
        ]
        length_fields = card_length_fields(c, joined, length_model, before)
        if split != "heldout":
            c.notes.append(
                f"length correction measured on split {split!r}, which holds the dev items it "
                "was fitted on: the after-correction figures are in-sample there"
            )
    section = None
    if ensemble is not None:
        merged = list({r.id: r for r in [*records, *dev_records]}.values())
        section = ensemble_card(
            merged,
            outputs,
            ensemble,
            split=split,
            label_type=label_type,
            rng=rng,
            heldout_fraction=heldout_fraction,
            n_resamples=n_resamples,
        )
    verdict = decide_trust(
        n=n,
        invalid_rate=n_invalid / n,
        trust_kappa=trust_kappa,
        trust_metric=trust_metric,
        ceiling_ratio=ceiling.ratio if ceiling else None,
        n_annotators=humans.shape[1],
        thresholds=thresholds,
    )
    if split != "heldout":
        verdict.reasons.append(
            f"NOTE: split {split!r} includes development items; only held-out cards are used by "
            "require_calibrated"
        )
    settings = verdict_settings(judge_settings or {})
    card = CalibrationCard(
        key=card_key(rubric_hash, judge_fingerprint, settings, set_name, split),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        judgekit_version=__version__,
        rubric_ref=rubric_ref,
        rubric_hash=rubric_hash,
        judge_model=judge_model,
        judge_fingerprint=judge_fingerprint,
        judge_settings=settings,
        set_name=set_name,
        set_sha256=set_sha256,
        label_type=label_type,
        outputs_source=outputs.source,
        split=SplitInfo(
            name=split,
            heldout_fraction=heldout_fraction,
            salt=DEFAULT_SALT,
            group_by=group_by,
            n_groups=joined.n_groups,
            n_set=len(records),
            n_split=joined.n_split,
        ),
        n=n,
        n_no_consensus=joined.n_no_consensus,
        n_annotators=humans.shape[1],
        n_missing_outputs=int((joined.rows < 0).sum()),
        n_invalid=n_invalid,
        invalid_rate=n_invalid / n,
        headline="kappa: invalid verdicts counted as disagreement (their own category)",
        kappa=kappa,
        kappa_valid_only=kappa_valid,
        trust_metric=trust_metric,
        accuracy=Interval.of(proportion_ci(correct, n), n),
        accuracy_valid_only=float(np.mean(c.judge_idx[c.valid] == c.human_idx[c.valid]))
        if c.valid.any()
        else None,
        confusion=c.confusion(),
        ordinal=ordinal,
        alpha=c.alpha(humans) if humans.shape[1] >= 1 else {},
        human_ceiling=ceiling,
        per_variant=c.per_variant(),
        position=c.position(),
        length=c.length(),
        **length_fields,
        variant_alpha=variant_alpha,
        variance=variance,
        reliability=reliability,
        expected_calibration_error=ece,
        notes=c.notes,
        thresholds=thresholds,
        verdict=verdict,
        ensemble=section,
    )
    return card
