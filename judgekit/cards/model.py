"""The calibration card: every figure measured about one judge x rubric x set x split, as models.

412 lines: one model per figure of the card (each a few fields with their descriptions) and
the key over them; splitting them apart would scatter one file format over several modules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from judgekit.bias import VarianceDecomposition
from judgekit.bias.learned import LearnedEnsembleModel
from judgekit.schema import Controls, StrictModel
from judgekit.stats import (
    ConfidenceInterval,
)

SplitName = Literal["heldout", "dev", "all"]
Setting = str | int | float | bool | None
LabelType = Literal["pairwise", "ordinal", "binary"]


class Interval(StrictModel):
    """A point estimate with a two-sided interval, as stored in a card."""

    estimate: float
    low: float
    high: float
    level: float
    method: str
    n: int
    n_resamples: int
    n_failed: int = 0
    n_groups: int | None = Field(
        default=None,
        description="Clusters the interval resampled (items sharing a question or article); "
        "None: items resampled as independent.",
    )

    @classmethod
    def of(cls, ci: ConfidenceInterval, n: int) -> Interval:
        return cls(
            estimate=ci.estimate,
            low=ci.low,
            high=ci.high,
            level=ci.level,
            method=ci.method,
            n=n,
            n_resamples=ci.n_resamples,
            n_failed=ci.n_failed,
            n_groups=ci.n_groups,
        )

    def format(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


class TrustThresholds(StrictModel):
    """When a judge counts as trusted for a rubric; every check must pass.

    Defaults: the headline kappa's 95% CI lower bound >= 0.4 ("moderate" agreement on Landis &
    Koch's scale, ruled out being worse with 95% confidence); judge/human-ceiling ratio >= 0.8
    (the judge reaches 80% of a typical annotator's leave-one-out agreement; only checked when the
    set has >= 2 annotators per item); invalid rate <= 0.1; at least 50 items.
    """

    min_kappa_ci_low: float = 0.4
    min_ceiling_ratio: float = 0.8
    max_invalid_rate: float = 0.1
    min_n: int = 50


class Verdict(StrictModel):
    """Trusted or not, with one line per check saying the number and whether it passed."""

    trusted: bool
    reasons: list[str]


class SplitInfo(StrictModel):
    """Enough to reproduce the split (``split.split_records``) and check its size."""

    name: SplitName
    heldout_fraction: float
    salt: str
    group_by: str = Field(
        description="The group key hashed for the split (the set manifest's split_group)."
    )
    n_groups: int = Field(description="Groups in this split.")
    n_set: int = Field(description="Records in the whole set.")
    n_split: int = Field(description="Records in this split (before dropping no-consensus ones).")


class ConfusionTable(StrictModel):
    """Counts with humans (consensus) as rows and the judge as columns, incl. ``invalid``."""

    rows: list[str]
    columns: list[str]
    counts: list[list[int]]


class ReliabilityBin(StrictModel):
    """Valid verdicts whose predicted-label probability falls in [low, high)."""

    low: float
    high: float
    n: int
    mean_probability: float
    human_agreement: float


class CeilingSummary(StrictModel):
    """Human-human agreement next to judge-human agreement (``stats.human_ceiling``)."""

    metric: str
    n_items: int
    n_annotators: int
    mean_pairwise_annotator: float
    judge_vs_consensus: float
    mean_loo_human: float
    mean_loo_judge: float
    ratio: float
    ties_dropped: int
    invalid_handling: str


class VariantAgreement(StrictModel):
    variant: str
    n_invalid: int
    kappa: Interval | None
    spearman: Interval | None


class PositionFigures(StrictModel):
    """From ``bias.position_stats`` on the per-order preferences for A."""

    flip_rate: Interval | None
    first_pick_before: Interval | None
    first_pick_after: Interval | None
    n_valid: int
    n_invalid: int


class LengthFigure(StrictModel):
    model: str
    slope: float
    ci_low: float
    ci_high: float
    n: int


class AgreementChange(StrictModel):
    """One agreement figure without and with the frozen length correction, on the same items."""

    metric: str
    before: Interval | None
    after: Interval | None


class OrdinalAgreement(StrictModel):
    """Ordinal-scale agreement on valid verdicts (an invalid verdict has no place on a scale)."""

    weighted_kappa_linear: Interval | None
    weighted_kappa_quadratic: Interval | None
    spearman: Interval | None
    kendall: Interval | None
    pearson: Interval | None


class MethodAgreement(StrictModel):
    """One way of combining the judge's prompts: dev (out-of-fold) and held-out kappa."""

    method: str
    dev_kappa: float | None
    heldout_kappa: Interval | None
    n_invalid: int


class AbstentionPolicy(StrictModel):
    """The confidence threshold for one target, chosen on dev, checked on the card's split."""

    target: float
    alpha: float
    threshold: float | None = Field(description="None: no threshold met the target; keep nothing.")
    n_calibration: int
    n_kept_calibration: int
    lower_bound: float | None = Field(
        description="(1 - alpha) lower bound on dev agreement at the threshold, by ``method``."
    )
    method: str = Field(
        default="Clopper-Pearson (independent items)",
        description="The test behind the threshold (``calibrate.measure.abstain``): "
        "Clopper-Pearson when dev items are independent, betting over groups when they share "
        "questions/articles.",
    )
    n_groups_calibration: int | None = Field(
        default=None, description="Independent dev groups the threshold was certified on."
    )
    n: int
    n_kept: int
    coverage: float
    agreement_kept: Interval | None
    met: bool | None = Field(description="Realised agreement on kept items >= target.")
    reason: str


class EnsembleCard(StrictModel):
    """Learned ensemble vs single variants, mean and majority; calibration; abstention."""

    model: LearnedEnsembleModel
    comparison: list[MethodAgreement]
    chosen: str
    reason: str
    reliability: list[ReliabilityBin] = Field(description="Learned ensemble on the card's split.")
    expected_calibration_error: float | None
    confidence_rule: str
    calibration_confidence: list[float | None] = Field(
        description="Dev out-of-fold confidences (None: invalid verdict)."
    )
    calibration_agreed: list[bool]
    calibration_ids: list[str] = Field(
        default_factory=list,
        description="Dev item ids aligned with calibration_confidence (empty in older cards).",
    )
    calibration_groups: list[str] = Field(
        default_factory=list,
        description="Their groups (the set's split_group): certificates treat a group as one "
        "independent unit, and a cascade re-certifies a later stage on the dev items the earlier "
        "stages escalate (``calibrate.measure.cascade.certify_stages``).",
    )
    abstention: list[AbstentionPolicy]


class CalibrationOptions(StrictModel):
    """Every option that changes what a card measures; the card key hashes all of them.

    ``controls`` / ``variants``: what the judge is run with (None: every rubric variant);
    ``fit_dev``: also judge the dev split, to fit the frozen length model and learned ensemble and
    to choose the controls the card applies (said in the card's notes and the command's output).
    """

    split: SplitName = "heldout"
    heldout_fraction: float = Field(default=0.5, gt=0, lt=1)
    limit: int | None = Field(default=None, ge=2)
    metric: str | None = None
    consensus: str = "majority"
    min_annotator_reliability: float | None = None
    fit_dev: bool = True
    controls: Controls = Field(default_factory=Controls)
    variants: list[str] | None = None
    seed: int = 0
    n_resamples: int = Field(default=2000, ge=1)
    thresholds: TrustThresholds = Field(default_factory=TrustThresholds)


class CardControls(StrictModel):
    """What a run that names this card applies. The card's figures (kappa, accuracy, the trust
    verdict) were measured on exactly the verdicts these controls produce on the held-out split.

    ``controls``: the bias controls and the decision rule (``ensemble == "learned"``: the card's
    frozen learned ensemble); ``variants``: the prompts judged; ``length_correction``: whether the
    card's frozen length model is applied; ``reasons``: why each choice was made (on dev only).
    """

    controls: Controls
    variants: list[str]
    length_correction: bool = False
    reasons: list[str] = Field(default_factory=list)


class SliceAgreement(StrictModel):
    """Headline figures on the items whose meta ``column`` is ``value`` (``note``: why none)."""

    column: str
    value: str
    n: int
    invalid_rate: float | None
    kappa: Interval | None
    trust: Interval | None = Field(description="The card's trust_metric on the slice.")
    accuracy: Interval | None
    note: str | None = None


class CalibrationCard(StrictModel):
    """Everything measured about one judge x rubric x calibration set x split, and the verdict."""

    key: str
    created: str
    judgekit_version: str
    rubric_ref: str
    rubric_hash: str
    judge_name: str | None = Field(
        default=None, description="The judge's name in judgekit.toml ([judge.NAME]), if named."
    )
    judge_model: str
    judge_fingerprint: str
    judge_settings: dict[str, Setting] = Field(
        description="The judge's settings that change its numbers (``verdict_settings``)."
    )
    set_name: str
    set_sha256: str
    options: CalibrationOptions = Field(
        description="Every option of the calibration (consensus: how the human label per item "
        "was formed; limit; held-out fraction...); the key hashes them."
    )
    label_type: LabelType
    outputs_source: str
    split: SplitInfo
    n: int = Field(description="Items compared: in the split, with a human consensus.")
    n_no_consensus: int
    n_annotators: int = Field(
        description="Most annotator labels on one item: with 2+, a missing human ceiling fails."
    )
    n_missing_outputs: int = Field(description="Items with no judge output (counted invalid).")
    n_invalid: int
    invalid_rate: float
    headline: str
    applies: CardControls = Field(
        description="Controls and decision rule a run with this card applies (measured here)."
    )
    kappa: Interval = Field(
        description="Cohen's kappa of the verdicts a run with this card makes, judge ties and "
        "invalid verdicts as categories of their own (headline)."
    )
    agreement_decided: Interval | None = Field(
        default=None,
        description="Agreement with humans on the items the judge decided (no tie, valid).",
    )
    coverage: float = Field(
        default=1.0, description="Share of items the judge decided (not a tie, not invalid)."
    )
    kappa_valid_only: Interval | None
    trust_metric: str
    accuracy: Interval
    accuracy_valid_only: float | None
    confusion: ConfusionTable
    ordinal: OrdinalAgreement | None
    alpha: dict[str, Interval]
    human_ceiling: CeilingSummary | None
    per_variant: list[VariantAgreement]
    position: PositionFigures | None
    length: LengthFigure | None
    length_model: dict[str, Any] | None = Field(
        default=None,
        description="Frozen length model fitted on dev: kind, fitted_on, n, unit, coefficients.",
    )
    length_before: LengthFigure | None = Field(
        default=None, description="Length slope of the verdicts on this split, frozen feature."
    )
    length_after: LengthFigure | None = Field(
        default=None, description="The same slope after the frozen correction (target: ~0)."
    )
    length_agreement: list[AgreementChange] = Field(default_factory=list)
    variant_alpha: dict[str, Interval] = Field(
        default_factory=dict, description="Krippendorff's alpha with prompt variants as raters."
    )
    variance: VarianceDecomposition | None = None
    reliability: list[ReliabilityBin]
    expected_calibration_error: float | None
    notes: list[str]
    thresholds: TrustThresholds
    verdict: Verdict
    ensemble: EnsembleCard | None = Field(
        default=None, description="Learned frozen ensemble and abstention (issue 12)."
    )
    slices: list[SliceAgreement] = Field(default_factory=list, description="calibrate --by")

    def trust_figure(self) -> Interval | None:
        """The agreement figure the trust verdict is decided on (named by ``trust_metric``)."""
        if self.label_type == "ordinal":
            return self.ordinal.weighted_kappa_quadratic if self.ordinal is not None else None
        return self.kappa

    def ceiling_sentence(self) -> str | None:
        """The judge's leave-one-out agreement next to the humans', in one sentence."""
        c = self.human_ceiling
        if c is None:
            return None
        return (
            f"The judge agrees with the human majority at {c.metric} {c.mean_loo_judge:.3f}; "
            f"humans agree with each other's majority at {c.mean_loo_human:.3f} "
            f"(leave-one-out), ratio {c.ratio:.2f}."
        )


# --------------------------------------------------------------------------- card key

OPERATIONAL_SETTINGS = frozenset(
    {
        "replicas",
        "served_by",
        "enable_prefix_caching",
        "block_size",
        "enforce_eager",
        "gpu_memory_utilization",
        "tensor_parallel_size",
        "max_concurrency",
        "executor",
        "source",
        "prompt_tokens",
        "speculative_config",
    }
)
"""Judge settings that only change how fast or where a judge runs, never its numbers."""


def verdict_settings(settings: Mapping[str, Setting]) -> dict[str, Setting]:
    """A judge's settings minus the purely operational ones: everything else (dtype, context
    length, label-probability method, prompt ending, engine version...) may change a verdict."""
    return {k: v for k, v in sorted(settings.items()) if k not in OPERATIONAL_SETTINGS}


def card_key(
    rubric_hash: str,
    judge_fingerprint: str,
    judge_settings: Mapping[str, Setting],
    options: Mapping[str, Any],
) -> str:
    """sha256 over what makes two cards interchangeable: everything that changes a verdict
    (rubric, weights, verdict settings) and every option that changes what was measured (set and
    its hash, split, held-out fraction, item limit, consensus, annotator filter, controls, seed,
    resamples, thresholds...); never the date or the numbers. A smoke card on 60 items has
    another key than the full card, so it never replaces it; a re-run of the same calibration
    replaces the older card for its key whatever its verdict."""
    settings = verdict_settings(judge_settings)
    payload = json.dumps([rubric_hash, judge_fingerprint, settings, dict(options)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
