"""Judge vs humans: agreement with CIs, bias figures and a trust verdict, stored as a card.

A calibration card answers "can this judge (model + settings) be trusted with this rubric?" on one
human-labelled set and split. The headline kappa counts invalid verdicts as disagreement: a judge
that fails to answer on the hard items would otherwise look better by abstaining. Cards are keyed
by (rubric hash, judge fingerprint, set, split), so a changed rubric or engine setting needs a new
card, and ``require_calibrated`` refuses an uncalibrated pair with the command that fixes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from judgekit._version import __version__
from judgekit.aggregate import Controls, ItemTable, combine, item_table
from judgekit.bias import (
    PairwiseLengthModel,
    PointwiseLengthModel,
    VarianceDecomposition,
    fit_pairwise_length,
    fit_pointwise_length,
    length_slope,
    pairwise_length_slope,
    position_stats,
    unswap,
    variance_decomposition,
    variant_agreement,
)
from judgekit.datasets import DEFAULT_SALT, heldout_mask, require_dev
from judgekit.files import cache_dir
from judgekit.schema import Item, PairwiseItem, StrictModel
from judgekit.stats import (
    ConfidenceInterval,
    bootstrap_ci,
    bootstrap_ci_2d,
    cohen_kappa,
    confusion_matrix,
    human_ceiling,
    kendall_tau,
    krippendorff_alpha,
    pearson,
    proportion_ci,
    spearman,
)

if TYPE_CHECKING:
    from judgekit.datasets import CalibrationRecord
    from judgekit.runner import JudgeRun

__all__ = [
    "CARDS_DIR_ENV",
    "CalibrationCard",
    "Interval",
    "JudgeOutputs",
    "LengthModel",
    "NotCalibratedError",
    "TrustThresholds",
    "Verdict",
    "calibrate",
    "calibrate_command",
    "card_key",
    "decide_trust",
    "default_cards_dir",
    "find_card",
    "fit_length_model",
    "load_length_model",
    "outputs_from_run",
    "outputs_from_verdicts",
    "preference_for_a",
    "require_calibrated",
    "save_card",
]

CARDS_DIR_ENV = "JUDGEKIT_CARDS_DIR"
INVALID = "invalid"
RELIABILITY_BINS = 10
SplitName = Literal["heldout", "dev", "all"]
LabelType = Literal["pairwise", "ordinal", "binary"]
Weights = Literal["linear", "quadratic"] | None
LengthModel = PairwiseLengthModel | PointwiseLengthModel
LENGTH_UNIT = "characters of the answer text"


# --------------------------------------------------------------------------- judge outputs


@dataclass(frozen=True)
class JudgeOutputs:
    """One judge's verdicts on a calibration set, as arrays aligned with ``item_ids``.

    ``probs`` rows are label distributions over ``labels`` (a NaN row is an invalid verdict);
    ``scores`` the expected value under ``values`` (pairwise: the preference for A). Optional
    inputs of the bias figures: ``variant_scores`` (the score under each prompt variant),
    ``p_a_ab`` / ``p_a_ba`` (preference for the original answer A, P(A) + P(tie)/2, in the AB
    and BA presentation orders, averaged over variants) and ``lengths`` (pointwise: characters of
    the answer, shape (n,); pairwise: characters of answers A and B, shape (n, 2)).
    """

    item_ids: tuple[str, ...]
    labels: tuple[str, ...]
    values: tuple[float, ...]
    probs: np.ndarray
    scores: np.ndarray
    source: str
    variant_scores: dict[str, np.ndarray] = field(default_factory=dict)
    p_a_ab: np.ndarray | None = None
    p_a_ba: np.ndarray | None = None
    lengths: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, k = len(self.item_ids), len(self.labels)
        if len(set(self.item_ids)) != n:
            raise ValueError("item_ids contain duplicates")
        if len(self.values) != k:
            raise ValueError(f"{k} labels but {len(self.values)} values")
        if self.probs.shape != (n, k):
            raise ValueError(f"probs must be {(n, k)} (items x labels), got {self.probs.shape}")
        arrays = {"scores": self.scores, "p_a_ab": self.p_a_ab, "p_a_ba": self.p_a_ba}
        arrays |= {f"variant_scores[{v!r}]": s for v, s in self.variant_scores.items()}
        for name, arr in arrays.items():
            if arr is not None and arr.shape != (n,):
                raise ValueError(f"{name} must have shape {(n,)}, got {arr.shape}")
        if self.lengths is not None and self.lengths.shape not in ((n,), (n, 2)):
            raise ValueError(f"lengths must be (n,) or (n, 2), got {self.lengths.shape}")

    @property
    def valid(self) -> np.ndarray:
        """Items with a verdict (a finite distribution)."""
        return np.isfinite(self.probs).all(axis=1)


def preference_for_a(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """P(A) + P(tie)/2 over the last axis: a preference in [0, 1] whatever the label values."""
    pref = probs[..., list(labels).index("A")]
    if "tie" in labels:
        pref = pref + 0.5 * probs[..., list(labels).index("tie")]
    return pref


def _mean_valid(x: np.ndarray) -> np.ndarray:
    """Row means over finite entries (items x variants); NaN where a row has none."""
    ok = np.isfinite(x)
    count = ok.sum(axis=1)
    return np.where(count > 0, np.where(ok, x, 0.0).sum(axis=1) / np.maximum(count, 1), np.nan)


def _answer_lengths(items: Sequence[Item]) -> np.ndarray:
    """Characters per answer: (n,) for pointwise items, (n, 2) for pairs (A, B)."""
    return np.array(
        [
            [len(i.answer_a), len(i.answer_b)] if isinstance(i, PairwiseItem) else len(i.answer)
            for i in items
        ],
        dtype=float,
    )


def outputs_from_run(run: JudgeRun) -> JudgeOutputs:
    """A judge run's verdicts plus per-variant scores, per-order preferences and answer lengths.

    Each variant's score goes through the run's own swap control (as the final verdict does) but
    no ensemble, so per-variant agreement shows what the ensemble averages over.
    """
    labels = run.rubric.labels
    ids = [item.id for item in run.items]
    values = np.asarray(run.rubric.values, dtype=float)
    table = item_table(run.judgments, labels, ids)
    per_variant_controls = Controls(swap=run.controls.swap, swap_method=run.controls.swap_method)
    variant_scores = {
        name: combine(
            ItemTable(
                table.item_ids,
                (name,),
                table.labels,
                {o: p[:, [v]] for o, p in table.probs.items()},
            ),
            per_variant_controls,
        )
        @ values
        for v, name in enumerate(table.variants)
    }
    p_a_ab = p_a_ba = None
    if {"AB", "BA"} <= table.probs.keys():
        ba = table.probs["BA"]
        ba_unswapped = unswap(ba.reshape(-1, len(labels)), labels).reshape(ba.shape)
        p_a_ab = _mean_valid(preference_for_a(table.probs["AB"], labels))
        p_a_ba = _mean_valid(preference_for_a(ba_unswapped, labels))
    return JudgeOutputs(
        item_ids=tuple(ids),
        labels=labels,
        values=tuple(float(v) for v in values),
        probs=run.item_probs,
        scores=run.item_scores,
        source=f"judgekit run ({run.rubric.ref}, {run.judge.model})",
        variant_scores=variant_scores,
        p_a_ab=p_a_ab,
        p_a_ba=p_a_ba,
        lengths=_answer_lengths(run.items),
    )


def _default_values(labels: Sequence[str]) -> tuple[float, ...]:
    """Numeric labels are their own value; pairwise labels A=1, tie=0.5, B=0; else the index."""
    try:
        return tuple(float(label) for label in labels)
    except ValueError:
        pairwise = {"A": 1.0, "B": 0.0, "tie": 0.5}
        if set(labels) <= pairwise.keys():
            return tuple(pairwise[label] for label in labels)
        return tuple(float(i) for i in range(len(labels)))


def outputs_from_verdicts(
    ids: Sequence[str],
    verdicts: Sequence[str | None],
    labels: Sequence[str],
    *,
    values: Sequence[float] | None = None,
    source: str = "precomputed verdicts",
) -> JudgeOutputs:
    """Hard verdicts from any judge (e.g. an API judge's file) as one-hot distributions.

    A verdict that is None or not exactly one of ``labels`` (after stripping whitespace) is
    invalid: it is kept and counted, never mapped to a default label.
    """
    if len(ids) != len(verdicts):
        raise ValueError(f"{len(ids)} ids but {len(verdicts)} verdicts")
    labels = tuple(labels)
    values = tuple(float(v) for v in values) if values is not None else _default_values(labels)
    index = {label: k for k, label in enumerate(labels)}
    probs = np.full((len(ids), len(labels)), np.nan)
    for i, verdict in enumerate(verdicts):
        k = index.get(verdict.strip()) if isinstance(verdict, str) else None
        if k is not None:
            probs[i] = 0.0
            probs[i, k] = 1.0
    return JudgeOutputs(
        item_ids=tuple(ids),
        labels=labels,
        values=values,
        probs=probs,
        scores=probs @ np.asarray(values, dtype=float),
        source=source,
    )


# --------------------------------------------------------------------------- card models


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
    """Enough to reproduce the split (``datasets.heldout_mask``) and check its size."""

    name: SplitName
    heldout_fraction: float
    salt: str
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


class CalibrationCard(StrictModel):
    """Everything measured about one judge x rubric x calibration set x split, and the verdict."""

    key: str
    created: str
    judgekit_version: str
    rubric_ref: str
    rubric_hash: str
    judge_model: str
    judge_fingerprint: str
    set_name: str
    set_sha256: str
    label_type: LabelType
    outputs_source: str
    split: SplitInfo
    n: int = Field(description="Items compared: in the split, with a human consensus.")
    n_no_consensus: int
    n_missing_outputs: int = Field(description="Items with no judge output (counted invalid).")
    n_invalid: int
    invalid_rate: float
    headline: str
    kappa: Interval = Field(description="Cohen's kappa, invalid as its own category (headline).")
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


# --------------------------------------------------------------------------- trust verdict


def decide_trust(
    *,
    n: int,
    invalid_rate: float,
    trust_kappa: Interval | None,
    trust_metric: str,
    ceiling_ratio: float | None,
    thresholds: TrustThresholds,
) -> Verdict:
    """Apply every threshold; the reasons list each check with its number, passed or failed."""
    t = thresholds
    checks: list[tuple[bool, str]] = [
        (n >= t.min_n, f"n = {n} (need >= {t.min_n})"),
        (
            invalid_rate <= t.max_invalid_rate,
            f"invalid rate = {invalid_rate:.3f} (need <= {t.max_invalid_rate:.3f})",
        ),
    ]
    if trust_kappa is None:
        checks.append((False, f"{trust_metric}: undefined on these data"))
    else:
        checks.append(
            (
                trust_kappa.low >= t.min_kappa_ci_low,
                f"{trust_metric} = {trust_kappa.format()}: CI lower bound {trust_kappa.low:.3f} "
                f"(need >= {t.min_kappa_ci_low:.3f})",
            )
        )
    reasons = [f"{'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks]
    if ceiling_ratio is None:
        reasons.append("SKIP: human-ceiling ratio (fewer than 2 annotators per item)")
    else:
        ok = ceiling_ratio >= t.min_ceiling_ratio
        checks.append((ok, ""))
        reasons.append(
            f"{'PASS' if ok else 'FAIL'}: judge/human-ceiling ratio = {ceiling_ratio:.3f} "
            f"(need >= {t.min_ceiling_ratio:.3f})"
        )
    return Verdict(trusted=all(ok for ok, _ in checks), reasons=reasons)


# --------------------------------------------------------------------------- calibration


def card_key(rubric_hash: str, judge_fingerprint: str, set_name: str, split: str) -> str:
    """sha256 over what makes two cards interchangeable; the date and numbers are excluded."""
    payload = json.dumps([rubric_hash, judge_fingerprint, set_name, split])
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class _Joined:
    """Records (with a consensus) of the split, aligned with their judge rows (-1 = missing)."""

    records: list[CalibrationRecord]
    rows: np.ndarray
    n_split: int
    n_no_consensus: int


def _join(
    records: Sequence[CalibrationRecord], outputs: JudgeOutputs, split: SplitName, fraction: float
) -> _Joined:
    if split == "all":
        chosen = list(records)
    else:
        mask = heldout_mask([r.id for r in records], fraction=fraction)
        chosen = [r for r, held in zip(records, mask, strict=True) if held == (split == "heldout")]
    kept = [r for r in chosen if r.consensus is not None]
    row = {item_id: i for i, item_id in enumerate(outputs.item_ids)}
    rows = np.array([row.get(r.id, -1) for r in kept], dtype=int)
    return _Joined(kept, rows, len(chosen), len(chosen) - len(kept))


def _infer_label_type(records: Sequence[CalibrationRecord], outputs: JudgeOutputs) -> LabelType:
    if records and isinstance(records[0].item, PairwiseItem):
        return "pairwise"
    return "binary" if len(outputs.labels) == 2 else "ordinal"


def _category(value: str | float, outputs: JudgeOutputs) -> str:
    """A human label as a category name: strings as they are, numbers via the label values."""
    if isinstance(value, str):
        return value
    for label, v in zip(outputs.labels, outputs.values, strict=True):
        if np.isclose(v, float(value)):
            return label
    return f"{float(value):g}"


def _nearest(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Index into ``scale`` of the value nearest each entry (NaN -> -1)."""
    finite = np.isfinite(values)
    idx = np.abs(np.where(finite, values, 0.0)[:, None] - scale[None, :]).argmin(axis=1)
    return np.where(finite, idx, -1)


class _Calibrator:
    """Holds the aligned arrays of one calibration so the measurements stay small functions."""

    def __init__(
        self,
        joined: _Joined,
        outputs: JudgeOutputs,
        label_type: LabelType,
        rng: np.random.Generator,
        n_resamples: int,
    ) -> None:
        self.outputs, self.label_type = outputs, label_type
        self.rng, self.n_resamples = rng, n_resamples
        self.notes: list[str] = []
        self.records = joined.records
        present = joined.rows >= 0
        safe = np.where(present, joined.rows, 0)
        nan_rows = np.full((len(self.records), len(outputs.labels)), np.nan)
        self.rows = joined.rows
        self.probs = np.where(present[:, None], outputs.probs[safe], nan_rows)
        self.scores = np.where(present, outputs.scores[safe], np.nan)
        self.valid = np.isfinite(self.probs).all(axis=1)

        if label_type == "ordinal":
            # Categories in scale order, so weighted kappas measure distance along the scale.
            order = np.argsort(outputs.values, kind="stable")
            self.scale = np.asarray(outputs.values, dtype=float)[order]
            self.categories = [outputs.labels[i] for i in order]
            self.judge_idx = _nearest(np.where(self.valid, self.scores, np.nan), self.scale)
            self.human_idx = _nearest(
                np.array([float(r.consensus) for r in self.records]), self.scale
            )
        else:
            humans = {_category(r.consensus, outputs) for r in self.records}
            for r in self.records:
                humans |= {_category(h, outputs) for h in r.human if h is not None}
            extra = sorted(humans - set(outputs.labels))
            self.categories = list(outputs.labels) + extra
            code = {c: i for i, c in enumerate(self.categories)}
            argmax = np.nan_to_num(self.probs, nan=-1.0).argmax(axis=1)
            self.judge_idx = np.where(self.valid, argmax, -1)
            self.human_idx = np.array([code[_category(r.consensus, outputs)] for r in self.records])
        self.k = len(self.categories)
        # "invalid" is the last category: it never matches a human label, so it is disagreement.
        self.judge_all = np.where(self.valid, self.judge_idx, self.k)

    # -- helpers ------------------------------------------------------------------------------

    def _boot(
        self, name: str, statistic: Callable[..., float], *arrays: np.ndarray
    ) -> Interval | None:
        """BCa interval, or None (with a note) when the data cannot support one."""
        n = len(arrays[0])
        try:
            ci = bootstrap_ci(statistic, *arrays, rng=self.rng, n_resamples=self.n_resamples)
        except ValueError as err:
            self.notes.append(f"{name}: not computed ({err})")
            return None
        return Interval.of(ci, n)

    def _kappa_all(self, x: np.ndarray, y: np.ndarray) -> float:
        """Kappa over the categories plus "invalid" (the judge's failures count against it)."""
        return cohen_kappa(x, y, labels=np.arange(self.k + 1))

    def _kappa_valid(self, x: np.ndarray, y: np.ndarray, weights: Weights = None) -> float:
        return cohen_kappa(x, y, labels=np.arange(self.k), weights=weights)

    # -- measurements -------------------------------------------------------------------------

    def kappas(self) -> tuple[Interval, Interval | None]:
        headline = self._boot("kappa", self._kappa_all, self.human_idx, self.judge_all)
        if headline is None:
            raise ValueError(f"the headline kappa is undefined on these data: {self.notes[-1]}")
        valid_only = self._boot(
            "kappa on valid verdicts",
            self._kappa_valid,
            self.human_idx[self.valid],
            self.judge_idx[self.valid],
        )
        return headline, valid_only

    def confusion(self) -> ConfusionTable:
        counts = confusion_matrix(self.human_idx, self.judge_all, labels=np.arange(self.k + 1))
        return ConfusionTable(
            rows=self.categories,
            columns=[*self.categories, INVALID],
            counts=counts[: self.k].tolist(),
        )

    def human_matrix(self) -> np.ndarray:
        """Items x annotators on the category codes (ordinal: scale values), NaN = missing."""
        width = max((len(r.human) for r in self.records), default=0)
        out = np.full((len(self.records), width), np.nan)
        code = {c: i for i, c in enumerate(self.categories)}
        for i, r in enumerate(self.records):
            for j, h in enumerate(r.human):
                if h is None:
                    continue
                if self.label_type == "ordinal":
                    out[i, j] = self.scale[_nearest(np.array([float(h)]), self.scale)[0]]
                else:
                    out[i, j] = code[_category(h, self.outputs)]
        return out

    def human_mean(self) -> np.ndarray:
        """Mean annotator value per item (ordinal), the consensus where there are no annotations."""
        return np.array(
            [
                np.mean([float(h) for h in r.human if h is not None])
                if any(h is not None for h in r.human)
                else float(r.consensus)
                for r in self.records
            ]
        )

    def ordinal(self) -> OrdinalAgreement:
        v = self.valid
        h, j = self.human_idx[v], self.judge_idx[v]
        mean, score = self.human_mean()[v], self.scores[v]
        return OrdinalAgreement(
            weighted_kappa_linear=self._boot(
                "linear weighted kappa", partial(self._kappa_valid, weights="linear"), h, j
            ),
            weighted_kappa_quadratic=self._boot(
                "quadratic weighted kappa", partial(self._kappa_valid, weights="quadratic"), h, j
            ),
            spearman=self._boot("spearman", spearman, score, mean),
            kendall=self._boot("kendall", kendall_tau, score, mean),
            pearson=self._boot("pearson", pearson, score, mean),
        )

    def alpha(self, humans: np.ndarray) -> dict[str, Interval]:
        """Krippendorff's alpha with the judge as one more rater (invalid = missing)."""
        if self.label_type == "ordinal":
            judge_rated = np.where(self.valid, self.scale[np.maximum(self.judge_idx, 0)], np.nan)
            rows = {
                "ordinal": np.vstack([humans.T, judge_rated]),
                "interval": np.vstack([humans.T, np.where(self.valid, self.scores, np.nan)]),
            }
        else:
            judge_rated = np.where(self.valid, self.judge_idx, np.nan)
            rows = {"nominal": np.vstack([humans.T, judge_rated])}
        out = {}
        for level, data in rows.items():
            try:
                ci = bootstrap_ci_2d(
                    lambda r, lv=level: krippendorff_alpha(r, lv),
                    data,
                    rng=self.rng,
                    n_resamples=self.n_resamples,
                    resample_raters=False,
                )
            except ValueError as err:
                self.notes.append(f"krippendorff alpha ({level}): not computed ({err})")
                continue
            out[level] = Interval.of(ci, data.shape[1])
        return out

    def ceiling(self, humans: np.ndarray) -> CeilingSummary | None:
        if humans.shape[1] < 2:
            return None
        if self.label_type == "ordinal":
            kind, labels = "ordinal", self.scale
            judge = np.where(self.valid, self.scale[np.maximum(self.judge_idx, 0)], np.nan)
            handling = "invalid verdicts left out (no place on an ordinal scale)"
        else:
            kind, labels = "categorical", np.arange(self.k + 1, dtype=float)
            judge = self.judge_all.astype(float)
            handling = "invalid verdicts counted as disagreement (own category)"
        try:
            c = human_ceiling(humans, judge, kind=kind, labels=labels)
        except ValueError as err:
            self.notes.append(f"human ceiling: not computed ({err})")
            return None
        return CeilingSummary(
            metric=c.metric,
            n_items=c.n_items,
            n_annotators=c.n_annotators,
            mean_pairwise_annotator=c.mean_pairwise_annotator,
            judge_vs_consensus=c.judge_vs_consensus,
            mean_loo_human=c.mean_loo_human,
            mean_loo_judge=c.mean_loo_judge,
            ratio=c.judge_vs_human_ratio,
            ties_dropped=c.n_consensus_ties_dropped,
            invalid_handling=handling,
        )

    def _aligned(self, arr: np.ndarray) -> np.ndarray:
        return np.where(self.rows >= 0, arr[np.maximum(self.rows, 0)], np.nan)

    def per_variant(self) -> list[VariantAgreement]:
        """Kappa per prompt variant, the variant's verdict being the label nearest its score."""
        values = np.asarray(self.outputs.values, dtype=float)
        code = {c: i for i, c in enumerate(self.categories)}
        to_category = np.array([code[label] for label in self.outputs.labels])
        out = []
        for name, raw in self.outputs.variant_scores.items():
            score = self._aligned(raw)
            valid = np.isfinite(score)
            nearest = to_category[np.maximum(_nearest(score, values), 0)]
            judged = np.where(valid, nearest, self.k)
            kappa = self._boot(f"kappa ({name})", self._kappa_all, self.human_idx, judged)
            rho = None
            if self.label_type == "ordinal":
                rho = self._boot(
                    f"spearman ({name})", spearman, score[valid], self.human_mean()[valid]
                )
            out.append(
                VariantAgreement(
                    variant=name, n_invalid=int((~valid).sum()), kappa=kappa, spearman=rho
                )
            )
        return out

    def position(self) -> PositionFigures | None:
        if self.outputs.p_a_ab is None or self.outputs.p_a_ba is None:
            return None
        ab, ba = self._aligned(self.outputs.p_a_ab), self._aligned(self.outputs.p_a_ba)
        stats = position_stats(
            np.column_stack([ab, 1 - ab]), np.column_stack([ba, 1 - ba]), labels=("A", "B")
        )

        def interval(ci: ConfidenceInterval | None, n: int) -> Interval | None:
            return Interval.of(ci, n) if ci is not None else None

        return PositionFigures(
            flip_rate=interval(stats.flip_rate, stats.n_valid),
            first_pick_before=interval(stats.first_pick_before, stats.n_valid),
            first_pick_after=interval(stats.first_pick_after, stats.n_valid),
            n_valid=stats.n_valid,
            n_invalid=stats.n_invalid,
        )

    def length(self, scale: float | None = None) -> LengthFigure | None:
        """Length slope of the verdicts; pairwise ``scale`` fixes the feature (a frozen model's),
        so slopes before and after a correction are in the same units."""
        lengths = self.outputs.lengths
        if lengths is None:
            return None
        rows = np.maximum(self.rows, 0)
        missing = self.rows < 0
        try:
            if lengths.ndim == 2:
                pref = preference_for_a(self.probs, self.outputs.labels)
                len_a = np.where(missing, np.nan, lengths[rows, 0])
                len_b = np.where(missing, np.nan, lengths[rows, 1])
                slope, low, high = pairwise_length_slope(pref, len_a, len_b, scale=scale)
                sd = "sd" if scale is None else f"{scale:.1f} (frozen dev sd)"
                model = f"logit P(A) on tanh((len_a - len_b) / {sd}); log-odds per unit"
            else:
                n_chars = np.where(missing, np.nan, lengths[rows])
                slope, low, high = length_slope(self.scores, n_chars, self.human_mean())
                model = "judge score on log length, human score as covariate; per e-fold"
        except ValueError as err:
            self.notes.append(f"length slope: not computed ({err})")
            return None
        n = int((self.valid & ~missing).sum())
        return LengthFigure(model=model, slope=slope, ci_low=low, ci_high=high, n=n)

    def variant_matrix(self) -> np.ndarray:
        """Items x variants scores on this split (NaN = invalid or missing)."""
        return np.column_stack([self._aligned(s) for s in self.outputs.variant_scores.values()])

    def variant_alpha(self) -> dict[str, Interval]:
        """Alpha with the variants as raters, on their verdicts and on their scores.

        Verdicts are each variant's label nearest its score (as in ``per_variant``); the
        interval-level alpha on scores also sees variants that agree on the label but not on
        the confidence.
        """
        if len(self.outputs.variant_scores) < 2:
            return {}
        scores = self.variant_matrix()
        values = np.asarray(self.outputs.values, dtype=float)
        idx = np.column_stack([_nearest(column, values) for column in scores.T])
        verdicts = np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)
        level = "ordinal" if self.label_type == "ordinal" else "nominal"
        out = {}
        for lv, data in ((level, verdicts), ("interval", scores)):
            try:
                ci = bootstrap_ci_2d(
                    lambda r, lv=lv: variant_agreement(r.T, lv),
                    data.T,
                    rng=self.rng,
                    n_resamples=self.n_resamples,
                    resample_raters=False,
                )
            except ValueError as err:
                self.notes.append(f"alpha across variants ({lv}): not computed ({err})")
                continue
            out[lv] = Interval.of(ci, data.shape[0])
        return out

    def variance(self) -> VarianceDecomposition | None:
        """Item vs variant vs residual variance of the per-variant scores."""
        if len(self.outputs.variant_scores) < 2:
            return None
        try:
            return variance_decomposition(self.variant_matrix())
        except ValueError as err:
            self.notes.append(f"variance decomposition: not computed ({err})")
            return None

    def reliability(self) -> tuple[list[ReliabilityBin], float | None]:
        """Binned probability of the judge's predicted label vs how often humans agreed."""
        v = self.valid
        if not v.any():
            return [], None
        confidence = self.probs[v, self._label_columns()[self.judge_idx[v]]]
        agreed = (self.judge_idx[v] == self.human_idx[v]).astype(float)
        edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
        which = np.minimum((confidence * RELIABILITY_BINS).astype(int), RELIABILITY_BINS - 1)
        bins, ece = [], 0.0
        for b in range(RELIABILITY_BINS):
            inside = which == b
            if not inside.any():
                continue
            p, a = float(confidence[inside].mean()), float(agreed[inside].mean())
            ece += inside.sum() / v.sum() * abs(p - a)
            bins.append(
                ReliabilityBin(
                    low=float(edges[b]),
                    high=float(edges[b + 1]),
                    n=int(inside.sum()),
                    mean_probability=p,
                    human_agreement=a,
                )
            )
        return bins, float(ece)

    def _label_columns(self) -> np.ndarray:
        """Category index -> column of ``probs`` (categories are the judge's labels first)."""
        return np.array(
            [self.outputs.labels.index(c) for c in self.categories[: len(self.outputs.labels)]]
        )


def calibrate(
    records: Sequence[CalibrationRecord],
    outputs: JudgeOutputs,
    *,
    rubric_ref: str,
    rubric_hash: str,
    judge_model: str,
    judge_fingerprint: str,
    set_name: str,
    set_sha256: str,
    split: SplitName,
    heldout_fraction: float = 0.5,
    rng: np.random.Generator,
    n_resamples: int = 2000,
    thresholds: TrustThresholds | None = None,
    label_type: LabelType | None = None,
    length_model: LengthModel | None = None,
) -> CalibrationCard:
    """Compare a judge's verdicts with the human consensus on one split and decide trust.

    Records without a consensus are left out (counted); records without a judge output count as
    invalid verdicts. Pairwise and binary sets use the judge's argmax label, ordinal sets its
    expected score rounded to the nearest label value. ``label_type`` defaults to pairwise for
    pairwise items, else binary for two labels and ordinal otherwise.

    ``length_model`` (from ``fit_length_model`` on dev, or ``load_length_model`` of an earlier
    card) is stored in the card as fitted on dev and applied as frozen: the card gets the
    split's length slope and agreement before and after the correction, never a refit.
    """
    thresholds = thresholds or TrustThresholds()
    label_type = label_type or _infer_label_type(records, outputs)
    joined = _join(records, outputs, split, heldout_fraction)
    if len(joined.records) < 2:
        raise ValueError(
            f"split {split!r} has {len(joined.records)} items with a consensus; need 2+"
        )
    c = _Calibrator(joined, outputs, label_type, rng, n_resamples)
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
        length_fields = _length_fields(c, joined, length_model, before)
        if split != "heldout":
            c.notes.append(
                f"length correction measured on split {split!r}, which holds the dev items it "
                "was fitted on: the after-correction figures are in-sample there"
            )
    verdict = decide_trust(
        n=n,
        invalid_rate=n_invalid / n,
        trust_kappa=trust_kappa,
        trust_metric=trust_metric,
        ceiling_ratio=ceiling.ratio if ceiling else None,
        thresholds=thresholds,
    )
    if split != "heldout":
        verdict.reasons.append(
            f"NOTE: split {split!r} includes development items; only held-out cards are used by "
            "require_calibrated"
        )
    card = CalibrationCard(
        key=card_key(rubric_hash, judge_fingerprint, set_name, split),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        judgekit_version=__version__,
        rubric_ref=rubric_ref,
        rubric_hash=rubric_hash,
        judge_model=judge_model,
        judge_fingerprint=judge_fingerprint,
        set_name=set_name,
        set_sha256=set_sha256,
        label_type=label_type,
        outputs_source=outputs.source,
        split=SplitInfo(
            name=split,
            heldout_fraction=heldout_fraction,
            salt=DEFAULT_SALT,
            n_set=len(records),
            n_split=joined.n_split,
        ),
        n=n,
        n_no_consensus=joined.n_no_consensus,
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
    )
    return card


# --------------------------------------------------------------------------- frozen length model


def fit_length_model(
    records: Sequence[CalibrationRecord],
    outputs: JudgeOutputs,
    split: str,
    *,
    heldout_fraction: float = 0.5,
) -> LengthModel:
    """Fit the judge's length bias on the dev split; ``split="heldout"`` raises HeldOutError.

    Only dev records (by ``heldout_mask``) with a consensus are used, whatever ``records``
    holds, so held-out items can never shape the coefficients. Lengths are characters of the
    answer text (``outputs.lengths``), as everywhere in calibration. Pairwise: the soft
    preference for A of the final verdict on tanh((len_a - len_b) / sd). Pointwise: the expected
    score on log length with the human consensus as covariate, so that answers humans rate
    higher because they are longer and better are not penalised.
    """
    require_dev(split)
    if outputs.lengths is None:
        raise ValueError("the judge outputs carry no answer lengths")
    joined = _join(records, outputs, "dev", heldout_fraction)
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
    """The verdicts (``probs``, ``scores``) with the frozen length effect removed.

    Pairwise: each distribution's A:B log-odds move by -slope * tanh((len_a - len_b) / scale),
    half on each side, a tie label keeping its relative mass; with labels A and B only this is
    exactly ``PairwiseLengthModel.correct`` on P(A). Pointwise: the expected score moves by
    -slope * (log length - centre); with two labels the distribution follows the corrected score.
    """
    lengths = outputs.lengths
    if lengths is None:
        raise ValueError("the judge outputs carry no answer lengths")
    pairwise = isinstance(model, PairwiseLengthModel)
    if pairwise != (lengths.ndim == 2):
        raise ValueError(f"{type(model).__name__} does not fit these outputs' lengths")
    values = np.asarray(outputs.values, dtype=float)
    if isinstance(model, PairwiseLengthModel):
        a, b = outputs.labels.index("A"), outputs.labels.index("B")
        shift = 0.5 * model.slope * np.tanh((lengths[:, 0] - lengths[:, 1]) / model.scale)
        log_p = np.log(np.clip(outputs.probs, 1e-6, 1.0))
        log_p[:, a] -= shift
        log_p[:, b] += shift
        probs = np.exp(log_p - np.logaddexp.reduce(log_p, axis=1, keepdims=True))
        scores = probs @ values
    else:
        scores = model.correct(outputs.scores, lengths)
        probs = outputs.probs
        if len(values) == 2:
            high = np.clip((scores - values[0]) / (values[1] - values[0]), 0.0, 1.0)
            probs = np.column_stack([1 - high, high])
    return replace(
        outputs, probs=probs, scores=scores, source=f"{outputs.source}, length-corrected"
    )


def _length_fields(
    c: _Calibrator,
    joined: _Joined,
    model: LengthModel,
    before: list[tuple[str, Interval | None]],
) -> dict[str, Any]:
    """Card fields of a frozen length model: the model, slopes and agreement before/after."""
    corrected = _Calibrator(
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


# --------------------------------------------------------------------------- card store


class NotCalibratedError(RuntimeError):
    """No trusted held-out calibration card for this rubric version and judge."""


def default_cards_dir() -> Path:
    """``$JUDGEKIT_CARDS_DIR``, else ``<judgekit cache dir>/cards``."""
    if env := os.environ.get(CARDS_DIR_ENV):
        return Path(env)
    return cache_dir() / "cards"


def save_card(card: CalibrationCard, cards_dir: Path | str) -> Path:
    """Write the card as ``<key>.json`` (atomically); a newer card for the same key replaces it."""
    directory = Path(cards_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{card.key}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(card.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path


def cards_for(rubric_hash: str, judge_fingerprint: str, cards_dir: Path) -> list[CalibrationCard]:
    """Held-out cards of this rubric and judge, newest first."""
    if not cards_dir.is_dir():
        return []
    cards = []
    for path in sorted(cards_dir.glob("*.json")):
        try:
            card = CalibrationCard.model_validate_json(path.read_text())
        except ValueError as err:
            raise ValueError(f"{path}: not a valid calibration card: {err}") from err
        if (
            card.rubric_hash == rubric_hash
            and card.judge_fingerprint == judge_fingerprint
            and card.split.name == "heldout"
        ):
            cards.append(card)
    return sorted(cards, key=lambda c: c.created, reverse=True)


def find_card(
    rubric_hash: str, judge_fingerprint: str, cards_dir: Path | str
) -> CalibrationCard | None:
    """The newest trusted held-out card for this rubric version and judge, on any set."""
    cards = cards_for(rubric_hash, judge_fingerprint, Path(cards_dir))
    return next((c for c in cards if c.verdict.trusted), None)


def calibrate_command(rubric_ref: str, judge_model: str) -> str:
    """The CLI command that produces a held-out card for this rubric and judge."""
    model = "" if judge_model.startswith("embedded:") else f" --model {judge_model}"
    return f"judgekit calibrate --rubric {rubric_ref}{model} --set SET --split heldout --out DIR"


def require_calibrated(
    rubric_hash: str,
    rubric_ref: str,
    judge_fingerprint: str,
    judge_model: str,
    cards_dir: Path | str | None = None,
) -> CalibrationCard:
    """The trusted held-out card for this rubric and judge, else ``NotCalibratedError``.

    The error names the ``judgekit calibrate`` command that makes a card.
    """
    directory = Path(cards_dir) if cards_dir is not None else default_cards_dir()
    cards = cards_for(rubric_hash, judge_fingerprint, directory)
    trusted = next((c for c in cards if c.verdict.trusted), None)
    if trusted is not None:
        return trusted
    found = (
        f"{len(cards)} held-out card(s) exist but none is trusted (newest, set "
        f"{cards[0].set_name!r}: "
        + "; ".join(r for r in cards[0].verdict.reasons if r.startswith("FAIL"))
        + ")"
        if cards
        else "no held-out calibration card exists"
    )
    raise NotCalibratedError(
        f"judge {judge_model} (fingerprint {judge_fingerprint[:12]}) is not calibrated for rubric "
        f"{rubric_ref} (hash {rubric_hash[:12]}) in {directory}: {found}. Make a card with:\n"
        f"  {calibrate_command(rubric_ref, judge_model)}\n"
        "(SET: a human-labelled calibration set for this rubric's mode)"
    )
